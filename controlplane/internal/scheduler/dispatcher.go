package scheduler

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Errors of the dispatcher.
var (
	// ErrNotActive: this node does not lead, or has not rebuilt its
	// working state yet; the request belongs on the leader.
	ErrNotActive = errors.New("dispatcher not active on this node")
	// ErrUnknownNode: the agent must register (again).
	ErrUnknownNode = errors.New("unknown node; register first")
	// ErrStale: a report from an attempt that no longer holds the step.
	ErrStale = errors.New("stale report: the step is not held by this attempt")
	// ErrNotFound: no such step.
	ErrNotFound = errors.New("no such step")
)

// Store is what the dispatcher needs of the replicated store.
type Store interface {
	State() *state.Store
	StepUpdates(ctx context.Context, ups []state.StepUpdate) ([]state.StepResult, error)
	RegisterNode(ctx context.Context, n state.Node) error
	SetNodeStatus(ctx context.Context, name string, status state.NodeStatus, now int64) error
}

// Burst is the log's writer, which gathers the lines written between Hold
// and Release into one write (linebuf.Writer).
type Burst interface {
	io.Writer
	Hold()
	Release()
}

// Config configures a Dispatcher. Zero durations take the defaults.
type Config struct {
	Store Store
	// MinHeartbeatTTL is the shortest time without a heartbeat before a
	// node is declared down (default 10 s); it grows with the fleet
	// (nodes/50 seconds, as Nomad does), plus HeartbeatGrace (default 5 s).
	MinHeartbeatTTL time.Duration
	HeartbeatGrace  time.Duration
	// FailoverTTL replaces the TTL for the first check after this node
	// becomes leader, so a new leader does not declare the fleet down
	// (default 30 s).
	FailoverTTL time.Duration
	// StallTimeout fails a running step whose progress has not moved for
	// this long (default 10 minutes).
	StallTimeout time.Duration
	// DeliveryTimeout releases a lease its agent has not taken in (not
	// acknowledged, not listed in a heartbeat) for this long, and
	// ReportTimeout a step whose agent has said for this long that its
	// report is on the way; both run the step elsewhere. Default: half
	// the node's heartbeat TTL (at least a second), so that whatever was
	// lost on the way, the step runs again within one TTL.
	DeliveryTimeout time.Duration
	ReportTimeout   time.Duration
	// SplitSeconds, when above 0, splits a video task's encode step into
	// parts of about this many seconds that run on several agents, when
	// its source lasts at least SplitMinSeconds (default 120), its frames
	// were counted, its plan can be split (encoders.Splittable) and the
	// fleet has more than one free slot. The leader decides when the
	// probe's report arrives.
	SplitSeconds, SplitMinSeconds float64
	// StragglerFactor and StragglerMin say when a running part gets a
	// backup copy on an idle agent: once most of its step's parts are
	// done and it has run StragglerFactor times their median time (default
	// 2; below 0, never) and at least StragglerMin (default 3 s).
	StragglerFactor float64
	StragglerMin    time.Duration
	// OnEnded, when set, is called on the leader with the id of each task
	// that failed or was cancelled, whose leftover files (kept parts,
	// staged results) no upload step will clear. It must not block.
	OnEnded func(taskID string)
	// MetricProjects, when above 0, reports the ready queue by project for
	// that many projects (those with the most queued), the rest summed
	// under "other": a label whose values stay bounded.
	MetricProjects int
	// FIFO serves the ready queue first come, first served, whatever the
	// tasks' priorities and projects (the benchmark's baseline); by
	// default higher priorities go first and projects share the fleet
	// by weighted round robin.
	FIFO bool
	// Access, when set, returns the S3 credentials a step of kind step of
	// task t needs (its project's connections for the buckets of its
	// input or output), put in the step's assignment. It must not block.
	Access func(t *api.Task, step string) []api.S3Access
	// Backoff is the wait before retry n (1-based); default 1 s, 4 s, 16 s.
	Backoff func(n int) time.Duration
	Metrics *Metrics
	Logger  *slog.Logger
	// LogBurst, when set, holds the log's writer while one applied change
	// logs a line per task (a batch of creates: hundreds), so that they
	// cost one write (package linebuf).
	LogBurst Burst
	// LogHandler, with LogBurst, makes a handler that writes to w as
	// Logger's handler writes to LogBurst (the same format and level, no
	// attributes): the "task queued" lines of a batch of creates are
	// rendered through it once and written from that shape (package
	// logshape), a tenth of a line's cost through slog.
	LogHandler func(w io.Writer) slog.Handler
	Now        func() time.Time
}

// Dispatcher is the leader's working state: the ready queue, the agents
// and their leases. It follows the replicated state through its changes
// (state.Store.Observe): a task created through any node, a cancel, a
// report, a lease — whatever wrote it — reaches the queue and the leases
// as it is applied. Run rebuilds the working state on leadership and keeps
// it until leadership ends; in between, calls fail with ErrNotActive.
type Dispatcher struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	active bool
	// epoch names this leadership in deliveries, so that an agent's
	// acknowledgements are only read against the sequence numbers that
	// this leader gave.
	epoch  string
	ready  *queue                // steps that can run, oldest first
	nodes  map[string]*nodeState // by name
	leases map[string]*lease     // step id → lease
	// backups holds the backup copies of parts (part id → its lease),
	// which run beside the part's lease in leases.
	backups map[string]*lease
	// chained holds the steps leased in a report's commit, to be handed
	// over in its answer rather than by long-poll, with the backend
	// counted for them.
	chained map[string]encoders.Backend
	// running holds, per project, its tasks that have started and not
	// ended: what a project's max_concurrent_tasks counts.
	running map[string]map[string]bool
	// hwCodecs caches the codecs some live node encodes in hardware; nil
	// when the fleet changed since (hardwareAnywhere).
	hwCodecs map[string]bool
	// rate is the media seconds the fleet encoded, by heartbeats' progress.
	rate rate
	// lines writes the "task queued" lines of a batch of creates from one
	// render (Config.LogHandler); nil without one.
	lines *queuedLines
}

type nodeState struct {
	node     state.Node
	lastSeen time.Time
	ttl      time.Duration
	running  map[string]*lease // step id → its lease on this node
	pending  []*lease          // to deliver on the next long-poll
	seq      uint64            // the last delivery sequence number given
	// placed is when a scheduling pass last placed a step here: equally
	// loaded nodes are offered least recently placed first, so that ties
	// go round the fleet.
	placed time.Time
	// cancel holds steps the agent must stop: told in the next heartbeat
	// reply.
	cancel map[string]bool
	wake   chan struct{}
}

// lease is a step leased to a node, from the moment this leader learns of
// it (the assignment applied, or the state rebuilt) until the step's
// outcome is applied.
type lease struct {
	taskID, stepID, kind, node string
	attempt                    int
	// part is the part of a split step this lease runs (stepID is then
	// the part's id); nil for a whole step. backup: this lease is the
	// part's backup copy, in backups.
	part    *api.Part
	backup  bool
	backend encoders.Backend
	// task is the task as it was assigned: what the agent is sent.
	task *state.Task
	// offeredAt is when this leader leased (or inherited) it; seq its
	// delivery number on its node's long-poll (0: not delivered there).
	// The long-poll answers in order, so an acknowledged number speaks
	// for every delivery up to it.
	offeredAt time.Time
	seq       uint64
	queued    bool // in its node's pending list
	handed    bool // handed over in the answer to a report
	inherited bool // leased by an earlier leader
	// received: the agent has it (listed it in a heartbeat, or
	// acknowledged its delivery); listed: a heartbeat listed it (the
	// agent's heartbeats are sent one after another, so a later one that
	// does not list it means the agent let it go).
	received, listed bool
	progress         api.RunningStep
	progressAt       time.Time
	reportingSince   time.Time
	// releasing: a release or failure is proposed; do not propose another.
	// backingUp: a backup copy of this part is being proposed.
	releasing, backingUp bool
}

// New returns an inactive Dispatcher, following cfg.Store's changes.
func New(cfg Config) *Dispatcher {
	if cfg.MinHeartbeatTTL == 0 {
		cfg.MinHeartbeatTTL = 10 * time.Second
	}
	if cfg.HeartbeatGrace == 0 {
		cfg.HeartbeatGrace = 5 * time.Second
	}
	if cfg.FailoverTTL == 0 {
		cfg.FailoverTTL = 30 * time.Second
	}
	if cfg.SplitMinSeconds == 0 {
		cfg.SplitMinSeconds = 120
	}
	if cfg.StragglerFactor == 0 {
		cfg.StragglerFactor = defaultStragglerFactor
	}
	if cfg.StragglerMin == 0 {
		cfg.StragglerMin = defaultStragglerMin
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = 10 * time.Minute
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration { return time.Second << (2 * (n - 1)) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	component := slog.String("component", "scheduler")
	d := &Dispatcher{cfg: cfg, log: cfg.Logger.With(component), kick: make(chan struct{}, 1)}
	if cfg.LogBurst != nil && cfg.LogHandler != nil {
		d.lines = &queuedLines{}
		d.lines.h = cfg.LogHandler(&d.lines.buf).WithAttrs([]slog.Attr{component})
	}
	cfg.Metrics.mu.Lock()
	cfg.Metrics.source = d.gauges
	if cfg.MetricProjects > 0 {
		cfg.Metrics.projects = d.queueByProject
	}
	cfg.Metrics.mu.Unlock()
	cfg.Store.State().Observe(d.Applied)
	return d
}

// Kick asks for a scheduling pass soon.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// ttl is the time a node may go without a heartbeat: longer for big
// fleets, so the leader's heartbeat load stays bounded.
func (d *Dispatcher) ttl(nodes int) time.Duration {
	return max(d.cfg.MinHeartbeatTTL, time.Duration(nodes)*time.Second/50)
}

// Run rebuilds the working state from the store and schedules until ctx
// ends (leadership lost). Call it from store.OnLeader.
func (d *Dispatcher) Run(ctx context.Context) {
	ready, running, nodes := d.rebuild()
	defer d.deactivate()
	d.log.Info("scheduler active", "ready", ready, "running", running, "nodes", nodes)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		d.schedule(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-tick.C:
			d.checkTimers(ctx)
			d.backupStragglers(ctx)
		}
	}
}

// rebuild loads nodes, leases and the ready queue from the state and
// returns their sizes, read while it still holds d.mu: once it is active,
// changes and agents change them from other goroutines. A change applied
// while it reads is applied again once it is done; applying changes is
// idempotent.
func (d *Dispatcher) rebuild() (ready, running, nodes int) {
	st := d.cfg.Store.State()
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ready, d.nodes, d.leases, d.chained = newQueue(), map[string]*nodeState{}, map[string]*lease{}, map[string]encoders.Backend{}
	d.ready.fifo = d.cfg.FIFO
	d.running = map[string]map[string]bool{}
	d.ready.weight = func(project string) int {
		if p, err := st.Project(project); err == nil {
			return p.Weight
		}
		return 1
	}
	d.backups = map[string]*lease{}
	d.epoch, d.hwCodecs = newEpoch(), nil
	for _, n := range st.Nodes() {
		if n.Status == state.NodeDown {
			continue
		}
		d.nodes[n.Name] = newNodeState(n, now, d.cfg.FailoverTTL)
	}
	for _, t := range st.ActiveTasks() {
		d.track(t, now)
	}
	d.ready.sortByReady()
	d.active = true
	return d.ready.len(), len(d.leases), len(d.nodes)
}

func newNodeState(n state.Node, now time.Time, ttl time.Duration) *nodeState {
	return &nodeState{node: n, lastSeen: now, ttl: ttl, running: map[string]*lease{}, cancel: map[string]bool{}, wake: make(chan struct{})}
}

// newEpoch names a leadership: random, so that no two leaderships share
// one.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// track puts a task's current step where it belongs: the ready queue when
// it waits for a node, a lease when it runs (one leased by an earlier
// leader: inherited, to be confirmed by its agent). Tracking a task again
// changes nothing. Callers hold d.mu.
func (d *Dispatcher) track(t *state.Task, now time.Time) {
	i := t.Current()
	if i < 0 || t.Status.Finished() {
		return
	}
	if t.Status == api.TaskProcessing {
		d.started(t.Project, t.ID)
	}
	s := t.Steps[i]
	if s.Parts != nil && !api.PartsDone(s.Parts) {
		// A split step runs its parts; once they are all in, it is queued
		// for its own run, the stitch. They queue longest first (the
		// sound's part, the whole track, leads), so that the last to start
		// are short and the agents finish together.
		for _, k := range longestFirst(s.Parts) {
			p := s.Parts[k]
			d.trackUnit(t, i, k, p.ID, p.Status, p.Attempt, p.Node, now)
			if p.Backup != nil && p.Status == api.StepProcessing {
				d.trackBackup(t, i, k, now)
			}
		}
		return
	}
	d.trackUnit(t, i, -1, s.ID, s.Status, s.Attempt, s.Node, now)
}

// trackUnit puts step i of t, or its part k (k ≥ 0), where it belongs.
// Callers hold d.mu.
func (d *Dispatcher) trackUnit(t *state.Task, i, k int, id string, status api.StepStatus, attempt int, at *string, now time.Time) {
	switch status {
	case api.StepWaiting, api.StepQueued:
		if d.leases[id] == nil {
			d.ready.push(readyOf(t, i, k))
		}
	case api.StepProcessing:
		if l := d.leases[id]; l != nil && l.attempt == attempt {
			return
		}
		node := ""
		if at != nil {
			node = *at
		}
		l := &lease{taskID: t.ID, stepID: id, kind: t.Steps[i].Kind, node: node, attempt: attempt, task: t,
			offeredAt: now, progressAt: now, inherited: true}
		if k >= 0 {
			part := t.Steps[i].Parts[k]
			l.part = &part
		}
		d.leases[id] = l
		if ns := d.nodes[node]; ns != nil {
			ns.running[id] = l
		}
	}
}

// longestFirst orders parts' indexes by media length to a tenth of a
// second, longest first; parts as long as each other (the picture's, a
// frame apart at most) keep their order.
func longestFirst(parts []api.Part) []int {
	order := make([]int, len(parts))
	for k := range order {
		order[k] = k
	}
	tenths := func(p api.Part) float64 { return math.Round((p.End - p.Start) * 10) }
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(tenths(parts[b]), tenths(parts[a])) })
	return order
}

// trackBackup records the backup copy of part k of step i, leased by an
// earlier leader. Callers hold d.mu.
func (d *Dispatcher) trackBackup(t *state.Task, i, k int, now time.Time) {
	p := t.Steps[i].Parts[k]
	if l := d.backups[p.ID]; l != nil && l.attempt == p.Backup.Attempt {
		return
	}
	part := p
	l := &lease{taskID: t.ID, stepID: p.ID, kind: t.Steps[i].Kind, node: p.Backup.Node, attempt: p.Backup.Attempt, task: t,
		part: &part, backup: true, offeredAt: now, progressAt: now, inherited: true}
	d.backups[p.ID] = l
	if ns := d.nodes[l.node]; ns != nil {
		ns.running[p.ID] = l
	}
}

// leaseOf is the lease of a step or part held by attempt: the part's own
// or its backup copy's; nil when neither.
func (d *Dispatcher) leaseOf(id string, attempt int) *lease {
	if l := d.leases[id]; l != nil && l.attempt == attempt {
		return l
	}
	if l := d.backups[id]; l != nil && l.attempt == attempt {
		return l
	}
	return nil
}

// eachLease calls f with every lease: steps, parts and backup copies.
// Callers hold d.mu.
func (d *Dispatcher) eachLease(f func(*lease)) {
	for _, l := range d.leases {
		f(l)
	}
	for _, l := range d.backups {
		f(l)
	}
}

// readyOf describes step i of t, or its part k (k ≥ 0), for placement.
func readyOf(t *state.Task, i, k int) Ready {
	s := t.Steps[i]
	r := Ready{TaskID: t.ID, StepID: s.ID, Kind: s.Kind, Attempt: s.Attempt, Project: t.Project, Priority: priorityOf(t.Priority)}
	failedOn := s.Node
	if k >= 0 {
		p := s.Parts[k]
		r.StepID, r.Attempt, failedOn, r.Part = p.ID, p.Attempt, p.Node, true
		if run := runOf(t, i, k); run != nil {
			r.Attempt = max(r.Attempt, run.Issued) // a backup copy's attempt is never given again
		}
		if p.Error == nil {
			failedOn = nil
		}
	} else if s.Error == nil {
		failedOn = nil
	}
	if failedOn != nil {
		r.Avoid = *failedOn // queued again after failing there
	}
	if run := runOf(t, i, k); run != nil {
		r.ReadyAt, r.NotBefore = run.ReadyAt, run.NotBefore
		if run.Avoid != "" {
			r.Avoid = run.Avoid // released by a node that lost it
		}
	}
	if r.IsEncode() {
		switch t.Kind {
		case encoders.KindVideo:
			r.Codec = encoders.Defaults(t.Kind, t.Options, "").Codec
		case encoders.KindAdaptive:
			r.Codec = encoders.CodecH264
		}
	}
	switch s.Kind {
	case api.StepIngest:
		r.Prefer = t.Holder(api.StepProbe)
	case api.StepUpload:
		r.Prefer = t.Holder(string(t.Kind))
	default:
		switch {
		case !r.IsEncode():
		case k < 0 && s.Parts != nil:
			r.Prefer, r.Part = mostParts(t, i), true // the stitch: where most parts are
		default:
			r.Prefer = t.Holder(api.StepProbe)
		}
	}
	return r
}

// readyOfNew is readyOf for the first step of a task just created, read
// without the task: a probe, never tried, ready since the task's creation.
func readyOfNew(q state.Queued) Ready {
	return Ready{TaskID: q.TaskID, StepID: q.StepID, Kind: q.StepKind, Project: q.Project, Priority: priorityOf(q.Priority), ReadyAt: q.ReadyAt}
}

// mostParts is the node that ran most of step i's parts.
func mostParts(t *state.Task, i int) string {
	count := map[string]int{}
	best := ""
	for k := range t.Steps[i].Parts {
		if run := runOf(t, i, k); run != nil && run.Holder != "" {
			count[run.Holder]++
			if c := count[run.Holder]; c > count[best] || (c == count[best] && run.Holder < best) {
				best = run.Holder
			}
		}
	}
	return best
}

func (d *Dispatcher) deactivate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = false
	for _, ns := range d.nodes {
		close(ns.wake) // release long-polls: they retry on the new leader
	}
	d.ready, d.nodes, d.leases, d.chained, d.backups = nil, nil, nil, nil, nil
}

// Active reports whether this dispatcher leads.
func (d *Dispatcher) Active() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active
}

// priorityOf is a task's priority as the queue orders them.
func priorityOf(p string) int {
	switch p {
	case api.PriorityLow:
		return PriorityLow
	case api.PriorityHigh:
		return PriorityHigh
	}
	return PriorityNormal
}

// started counts a task of project as running. Callers hold d.mu.
func (d *Dispatcher) started(project, taskID string) {
	if d.running[project] == nil {
		d.running[project] = map[string]bool{}
	}
	d.running[project][taskID] = true
}

// capped returns, for a pass, whether a step may be placed under its
// project's max_concurrent_tasks: a step of a task already running may; a
// task's first step only while the project runs fewer tasks than its cap
// (counting those this pass admitted). Callers hold d.mu.
func (d *Dispatcher) capped() func(Ready) bool {
	caps := map[string]int{}
	for _, p := range d.cfg.Store.State().Projects() {
		if p.MaxConcurrentTasks > 0 {
			caps[p.ID] = p.MaxConcurrentTasks
		}
	}
	if len(caps) == 0 {
		return func(Ready) bool { return true }
	}
	admitted := map[string]int{}
	return func(r Ready) bool {
		c, ok := caps[r.Project]
		if !ok || d.running[r.Project][r.TaskID] {
			return true
		}
		if len(d.running[r.Project])+admitted[r.Project] >= c {
			return false // waits: not refused
		}
		admitted[r.Project]++
		return true
	}
}

// queueByProject counts the ready steps of the MetricProjects projects
// with the most, the rest under "other", the operator's under "none"; a
// dispatcher that does not lead reports nothing.
func (d *Dispatcher) queueByProject() map[string]float64 {
	d.mu.Lock()
	counts := map[string]float64{}
	if d.active {
		for p, n := range d.ready.tally.projects {
			counts[p] = float64(n)
		}
	}
	d.mu.Unlock()
	out := map[string]float64{}
	names := make([]string, 0, len(counts))
	for p := range counts {
		if p == "" {
			out["none"] = counts[p]
			continue
		}
		names = append(names, p)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b)) })
	for i, p := range names {
		if i < d.cfg.MetricProjects {
			out[p] = counts[p]
		} else {
			out["other"] += counts[p]
		}
	}
	return out
}
