package archive

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Store is what the retirer needs of the replicated store.
type Store interface {
	State() *state.Store
	RetireTasks(ctx context.Context, r state.Retirement) (int, error)
	// AppliedIndex is the index of the last entry applied: whether other
	// writes came while the retirer worked.
	AppliedIndex() uint64
}

// Retirer moves finished tasks older than the retention out of the
// replicated state and into the archive, on the leader: a pass reads up to
// Pass tasks due, writes them to the archive, and only once they are
// stored proposes the entries that drop them, Batch at a time. While the
// archive cannot be written, nothing retires: the metrics say so, and the
// next try comes later.
//
// Retirement never stalls writes: an entry drops few tasks, so that its
// apply (on every node) is short, and after each piece of work (the
// archive write, each entry) that other writes came during, the retirer
// rests Pace times as long as it took, so that it takes at most
// 1/(Pace+1) of a busy leader's time however long the backlog is. After
// work that had the log to itself (no other write came), it rests as long
// as the work took: an idle cluster clears a backlog (Pace+1)/2 times as
// fast.
type Retirer struct {
	Store     Store
	Archive   *Archive
	Retention time.Duration
	// Pass is the most tasks read and archived at once (default 2,000);
	// Batch the most one entry drops (default 50: a short apply beside
	// the creates; when tasks were in memdb, 1,000 took about 80 ms,
	// and raised p99 of POST /tasks 4.5 ×).
	Pass, Batch int
	// Pace is how many times as long as each piece of work the retirer
	// rests after it (default 8: a ninth of the leader's time at most;
	// with 32 writers saturating one server, about 550 tasks retire a
	// second and p99 of POST /tasks stays within 1.1 ×).
	Pace    float64
	Metrics *Metrics
	Logger  *slog.Logger
}

// Metrics of retirement.
type Metrics struct {
	Retired  prometheus.Counter
	Failures prometheus.Counter
	Failing  prometheus.Gauge
	Due      prometheus.Gauge
}

// NewMetrics registers retirement's metrics with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Retired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ittybit_tasks_retired_total",
			Help: "Finished tasks moved from the replicated state to the archive, by this node as leader.",
		}),
		Failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ittybit_archive_write_failures_total",
			Help: "Archive writes that failed (nothing retired with them), by this node as leader.",
		}),
		Failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ittybit_archive_failing",
			Help: "1 on the leader while the archive cannot be written and tasks wait to retire, else 0.",
		}),
		Due: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ittybit_tasks_retire_due",
			Help: "Finished tasks past the retention not yet retired (counted up to 1,000,000), on the leader.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Retired, m.Failures, m.Failing, m.Due)
	}
	return m
}

// dueCountLimit bounds the count behind ittybit_tasks_retire_due.
const dueCountLimit = 1_000_000

// Run retires tasks until ctx ends (leadership lost).
func (r *Retirer) Run(ctx context.Context) {
	if r.Pass <= 0 {
		r.Pass = 2000
	}
	if r.Batch <= 0 {
		r.Batch = 50
	}
	if r.Pace <= 0 {
		r.Pace = 8
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer r.Metrics.Failing.Set(0)
	defer r.Metrics.Due.Set(0)
	// Look again after a tenth of the retention (1 s to 30 s); at once
	// (after the rest) after a full pass; after a failure, later each
	// time (up to a minute).
	every := min(max(r.Retention/10, time.Second), 30*time.Second)
	backoff := every
	wait := time.Duration(0)
	failing := false
	var counted time.Time // when the tasks due were last counted
	dueCount := 0
	for {
		if !sleep(ctx, wait) {
			return
		}
		now := time.Now()
		before := now.Add(-r.Retention).UnixMilli()
		st := r.Store.State()
		if time.Since(counted) >= 5*time.Second { // a walk over every task due
			dueCount, counted = st.RetirableCount(before, dueCountLimit), time.Now()
			r.Metrics.Due.Set(float64(dueCount))
		}
		start, index := now, r.Store.AppliedIndex()
		due := st.Retirable(now.UnixMilli(), before, r.Pass)
		if len(due) == 0 {
			wait = every
			continue
		}
		err := r.Archive.Write(ctx, due)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.Metrics.Failures.Inc()
			r.Metrics.Failing.Set(1)
			if !failing {
				log.Error("archive write failed", "err", err, "due", len(due),
					"effect", "finished tasks stay in memory, none lost, until a write succeeds")
			}
			failing = true
			wait, backoff = backoff, min(backoff*2, time.Minute)
			continue
		}
		if failing {
			log.Info("archive writable again: retiring tasks")
		}
		failing, backoff = false, every
		r.Metrics.Failing.Set(0)
		if !r.rest(ctx, start, index, 0) {
			return
		}
		wait = every
		if len(due) == r.Pass {
			wait = 0
		}
		for batch := range slices.Chunk(due, r.Batch) {
			start, index := time.Now(), r.Store.AppliedIndex()
			// Metrics.Retired is counted by the store as this node applies
			// the entries it proposed (server: Store.OnRetired), so an
			// entry committed as leadership ended counts too.
			n, err := r.Store.RetireTasks(ctx, retirement(batch))
			if ctx.Err() != nil {
				return
			}
			if err != nil { // archived, not dropped: the next pass archives them again
				log.Warn("retiring tasks failed", "err", err, "count", len(batch))
				wait = every
				break
			}
			dueCount = max(0, dueCount-n)
			r.Metrics.Due.Set(float64(dueCount))
			log.Debug("retired tasks", "count", n)
			if !r.rest(ctx, start, index, 1) {
				return
			}
		}
	}
}

// rest waits after the work begun at start, when the applied index was
// index, and that wrote own entries: Pace times as long as it took when
// other writes came meanwhile, as long when none did. False when ctx
// ended first.
func (r *Retirer) rest(ctx context.Context, start time.Time, index, own uint64) bool {
	took := time.Since(start)
	if r.Store.AppliedIndex()-index > own {
		took = time.Duration(float64(took) * r.Pace)
	}
	return sleep(ctx, took)
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retirement is the entry that drops a batch of retirees.
func retirement(batch []state.Retiree) state.Retirement {
	r := state.Retirement{IDs: make([]string, len(batch)), Listed: true}
	for i, t := range batch {
		r.IDs[i] = t.ID
		r.Requests = append(r.Requests, t.Requests...)
		r.Events = append(r.Events, t.Events...)
	}
	return r
}
