package archive

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Store is what the retirer needs of the replicated store.
type Store interface {
	State() *state.Store
	RetireTasks(ctx context.Context, ids []string, keys []state.RequestKey) (int, error)
}

// Retirer moves finished tasks older than the retention out of the
// replicated state and into the archive, on the leader: a batch is written
// to the archive first, and only once it is stored is the entry that drops
// those tasks proposed. While the archive cannot be written, nothing
// retires: the metrics say so, and the next try comes later.
type Retirer struct {
	Store     Store
	Archive   *Archive
	Retention time.Duration
	// Batch is the most tasks one entry drops (default 1,000): small
	// enough that an apply never stalls the writes behind it.
	Batch   int
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
	if r.Batch <= 0 {
		r.Batch = 1000
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer r.Metrics.Failing.Set(0)
	defer r.Metrics.Due.Set(0)
	// Look again after a tenth of the retention (1 s to 30 s); at once
	// after a full batch; after a failure, later each time (up to a
	// minute).
	every := min(max(r.Retention/10, time.Second), 30*time.Second)
	backoff := every
	wait := time.Duration(0)
	failing := false
	var counted time.Time // when the tasks due were last counted
	dueCount := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		before := time.Now().Add(-r.Retention).UnixMilli()
		st := r.Store.State()
		if time.Since(counted) >= 5*time.Second { // a walk over every task due
			dueCount, counted = st.RetirableCount(before, dueCountLimit), time.Now()
			r.Metrics.Due.Set(float64(dueCount))
		}
		due := st.Retirable(before, r.Batch)
		if len(due) == 0 {
			wait = every
			continue
		}
		n, err := r.retire(ctx, st, due)
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
		r.Metrics.Retired.Add(float64(n))
		dueCount = max(0, dueCount-n)
		r.Metrics.Due.Set(float64(dueCount))
		log.Debug("retired tasks", "count", n)
		wait = every
		if len(due) == r.Batch {
			wait = 0
		}
	}
}

// retire archives one batch, then drops it from the state.
func (r *Retirer) retire(ctx context.Context, st *state.Store, due []state.Retiree) (int, error) {
	if err := r.Archive.Write(ctx, due); err != nil {
		return 0, err
	}
	ids := make([]string, len(due))
	set := make(map[string]bool, len(due))
	for i, t := range due {
		ids[i] = t.ID
		set[t.ID] = true
	}
	return r.Store.RetireTasks(ctx, ids, st.RequestKeysOf(set))
}
