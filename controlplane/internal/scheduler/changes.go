package scheduler

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/internal/logshape"
)

// Applied follows a change of the replicated state: new tasks join the
// queue, a cancelled task's steps leave the queue and their agents are
// told to stop, an applied lease is delivered to its node, and a step's
// outcome ends its lease and queues what comes next. It is the state's
// observer (New registers it), called as each write is applied on this
// node, whoever proposed it; on a node that does not lead it does
// nothing. Applying a change again (one applied while a new leader
// rebuilds is seen twice) leaves the queue and the leases as they are.
func (d *Dispatcher) Applied(c state.Change) {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return
	}
	if b := d.cfg.LogBurst; b != nil && c.Created() > 1 {
		b.Hold()
		defer b.Release()
	}
	for q := range c.CreatedQueued() {
		if d.leases[q.StepID] == nil {
			d.ready.push(readyOfNew(q))
		}
	}
	d.logQueued(c)
	if t := c.Cancelled; t != nil {
		d.cancelled(t)
	}
	for _, sc := range c.Steps {
		switch sc.Update.Op {
		case state.OpAssign:
			d.leased(sc.Update, sc.Task, now)
		case state.OpBackup:
			d.backedUp(sc.Update, sc.Task, now)
		default:
			d.stepEnded(sc.Update, sc.Task, now)
		}
	}
	d.Kick()
}

// logQueued logs a "task queued" line for each new task. The lines of one
// create entry share its time; with a LogHandler they are written from
// one render of their shape, in one write, and otherwise each goes to the
// handler as Logger.LogAttrs would send it, less the caller's frame that
// no handler here reads (none adds the source): runtime.Callers was a
// fifth of a line's cost on the leader, and a line through slog a
// microsecond a task.
func (d *Dispatcher) logQueued(c state.Change) {
	ctx := context.Background()
	h := d.log.Handler()
	if c.Created() == 0 || !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	at := time.Now()
	if d.lines != nil && d.lines.write(d.cfg.LogBurst, at, c, h) {
		return
	}
	for q := range c.CreatedQueued() {
		_ = h.Handle(ctx, queuedRecord(at, q.TaskID, q.StepID, string(q.Kind))) // as Logger.LogAttrs, which drops a handler's error
	}
}

// queuedRecord is the "task queued" line of a task.
func queuedRecord(at time.Time, task, step, kind string) slog.Record {
	r := slog.NewRecord(at, slog.LevelInfo, "task queued", 0)
	r.AddAttrs(slog.String("task_id", task), slog.String("step_id", step), slog.String("node_id", ""), slog.String("kind", kind))
	return r
}

// queuedLines makes the "task queued" lines of a batch of creates from
// one render of their shape (package logshape). It is used under the
// dispatcher's lock.
type queuedLines struct {
	h     slog.Handler // Config.LogHandler's, writing to buf
	buf   bytes.Buffer
	shape logshape.Shape
	out   []byte
}

// write writes the lines of c's new tasks to w, and reports false, having
// written none, when their shape could not be rendered. A task whose ids
// the shape cannot hold as they are goes through h, the logger's handler,
// in its place among the others.
func (l *queuedLines) write(w io.Writer, at time.Time, c state.Change, h slog.Handler) bool {
	shape := &l.shape
	if !shape.Render(l.h, &l.buf, queuedRecord(at, logshape.Var(0), logshape.Var(1), logshape.Var(2)), 3) {
		return false
	}
	b := l.out[:0]
	for q := range c.CreatedQueued() {
		var plain bool
		if b, plain = shape.Append(b, q.TaskID, q.StepID, string(q.Kind)); plain {
			continue
		}
		if len(b) > 0 {
			_, _ = w.Write(b) // as the handler, a log's write error goes nowhere
			b = b[:0]
		}
		_ = h.Handle(context.Background(), queuedRecord(at, q.TaskID, q.StepID, string(q.Kind)))
	}
	if len(b) > 0 {
		_, _ = w.Write(b)
	}
	if cap(b) <= 64<<10 {
		l.out = b // kept for the next batch, unless a burst made it large
	}
	return true
}

// leased records an applied assignment as a lease and queues it for its
// node's long-poll.
func (d *Dispatcher) leased(u state.StepUpdate, t *state.Task, now time.Time) {
	if l := d.leases[u.StepID]; l != nil && l.attempt == u.Attempt {
		return // known already
	}
	d.ready.remove(u.StepID)
	i, k := unitIndex(t, u.StepID)
	if i < 0 {
		return
	}
	l := &lease{taskID: t.ID, stepID: u.StepID, kind: t.Steps[i].Kind, node: u.Node, attempt: u.Attempt, task: t,
		offeredAt: now, progressAt: now}
	run := runOf(t, i, k)
	if k >= 0 {
		part := t.Steps[i].Parts[k]
		l.part = &part
	}
	d.leases[u.StepID] = l
	if run != nil {
		ready := max(run.ReadyAt, run.NotBefore)
		wait := max(0, float64(u.Now-ready)) / 1000
		d.cfg.Metrics.StepWait.Observe(wait)
		d.log.Debug("step assigned", append(taskAttrs(t.ID, u.StepID, u.Node), "step", l.kind, "attempt", u.Attempt, "wait_seconds", wait)...)
	}
	ns := d.nodes[u.Node]
	if ns == nil {
		return // gone meanwhile: the timers release it
	}
	ns.running[u.StepID] = l
	if _, ok := d.chained[u.StepID]; ok {
		return // the report that asked for it hands it over
	}
	ns.offer(l)
}

// backedUp records an applied backup copy of a part as a lease and queues
// it for its node's long-poll.
func (d *Dispatcher) backedUp(u state.StepUpdate, t *state.Task, now time.Time) {
	if d.leaseOf(u.StepID, u.Attempt) != nil {
		return
	}
	i, k := unitIndex(t, u.StepID)
	if i < 0 || k < 0 {
		return
	}
	part := t.Steps[i].Parts[k]
	l := &lease{taskID: t.ID, stepID: u.StepID, kind: t.Steps[i].Kind, node: u.Node, attempt: u.Attempt, task: t,
		part: &part, backup: true, offeredAt: now, progressAt: now}
	d.backups[u.StepID] = l
	d.cfg.Metrics.BackupsStarted.Inc()
	d.log.Info("backup copy started", append(taskAttrs(t.ID, u.StepID, u.Node), "attempt", u.Attempt)...)
	if ns := d.nodes[u.Node]; ns != nil {
		ns.running[u.StepID] = l
		ns.offer(l)
	}
}

// offer queues a lease for the node's next long-poll and wakes it.
func (ns *nodeState) offer(l *lease) {
	if l.queued {
		return
	}
	l.queued = true
	ns.pending = append(ns.pending, l)
	ns.signal()
}

// signal wakes the node's long-poll.
func (ns *nodeState) signal() {
	close(ns.wake)
	ns.wake = make(chan struct{})
}

// stepEnded follows an applied outcome (completed, failed, released): the
// lease ends, and the task's next step, or the same step again, is queued.
func (d *Dispatcher) stepEnded(u state.StepUpdate, t *state.Task, now time.Time) {
	l := d.leaseOf(u.StepID, u.Attempt)
	if l != nil {
		d.dropLease(l)
	}
	if i, k := unitIndex(t, u.StepID); k >= 0 {
		d.partEnded(u, t.Steps[i].Parts[k], l)
	}
	d.observeDone(u, t)
	d.logOutcome(u, t, l)
	if t.Status.Finished() {
		d.stop(t) // a part that failed for good ends its task: the others stop
		return
	}
	d.track(t, now)
}

// partEnded settles a part's other copy after one copy's outcome: the
// loser of a race is stopped, and a backup whose first copy ended runs on
// as the part's lease. l is the ended copy's lease, if this leader had
// it. Callers hold d.mu.
func (d *Dispatcher) partEnded(u state.StepUpdate, p api.Part, l *lease) {
	if u.Op == state.OpComplete && l != nil && l.backup {
		d.cfg.Metrics.BackupsWon.Inc()
		d.log.Info("backup copy won", append(taskAttrs(l.taskID, l.stepID, l.node), "attempt", l.attempt)...)
	}
	if (u.Op == state.OpFail || u.Op == state.OpRelease) && p.Status == api.StepQueued {
		d.cfg.Metrics.PartRetries.Inc()
	}
	for _, other := range []*lease{d.leases[p.ID], d.backups[p.ID]} {
		switch {
		case other == nil:
		case p.Status == api.StepProcessing && p.RunsAttempt(other.attempt):
			if other.backup && other.attempt == p.Attempt {
				// The first copy ended: the backup is the part's run now.
				delete(d.backups, p.ID)
				other.backup = false
				d.leases[p.ID] = other
			}
		default:
			// The part ended (the other copy won) or moved on: this copy's
			// work is discarded.
			d.dropLease(other)
			if ns := d.nodes[other.node]; ns != nil {
				ns.cancel[p.ID] = true
			}
		}
	}
}

// dropLease forgets a lease.
func (d *Dispatcher) dropLease(l *lease) {
	if l.backup {
		if d.backups[l.stepID] == l {
			delete(d.backups, l.stepID)
		}
	} else if d.leases[l.stepID] == l {
		delete(d.leases, l.stepID)
	}
	if ns := d.nodes[l.node]; ns != nil && ns.running[l.stepID] == l {
		delete(ns.running, l.stepID)
	}
}

// cancelled counts a cancelled task, drops its queued step and tells the
// agents running its steps to stop.
func (d *Dispatcher) cancelled(t *state.Task) {
	d.cfg.Metrics.TasksFinished.WithLabelValues(string(t.Kind), string(api.TaskCancelled)).Inc()
	step, node := "", ""
	if i := t.Current(); i >= 0 {
		step = t.Steps[i].ID
		if n := t.Steps[i].Node; n != nil {
			node = *n
		}
	}
	d.log.Info("task cancelled", taskAttrs(t.ID, step, node)...)
	d.stop(t)
}

// stop drops an ended task's queued steps and tells the agents running
// its steps and parts to stop. Callers hold d.mu.
func (d *Dispatcher) stop(t *state.Task) {
	if r := d.running[t.Project]; r != nil {
		delete(r, t.ID)
		if len(r) == 0 {
			delete(d.running, t.Project)
		}
	}
	if (t.Status == api.TaskFailed || t.Status == api.TaskCancelled) && d.cfg.OnEnded != nil {
		d.cfg.OnEnded(t.ID)
	}
	for _, s := range t.Steps {
		for _, id := range append(partIDs(s), s.ID) {
			d.ready.remove(id)
			for _, l := range []*lease{d.leases[id], d.backups[id]} {
				if l != nil {
					d.dropLease(l)
					if ns := d.nodes[l.node]; ns != nil {
						ns.cancel[id] = true
					}
				}
			}
		}
	}
}

func partIDs(s api.Step) []string {
	var ids []string
	for _, p := range s.Parts {
		ids = append(ids, p.ID)
	}
	return ids
}

// unitIndex finds what id names in t: step i (k is -1), or part k of step
// i; -1, -1 when t has neither.
func unitIndex(t *state.Task, id string) (i, k int) {
	if i := stepIndex(t, id); i >= 0 {
		return i, -1
	}
	return state.PartIndex(t, id)
}

// runOf is the scheduling state of step i of t, or of its part k (k ≥ 0);
// nil when the task has none recorded.
func runOf(t *state.Task, i, k int) *state.StepRun {
	if i < 0 || i >= len(t.Runs) {
		return nil
	}
	if k < 0 {
		return &t.Runs[i]
	}
	if k < len(t.Runs[i].Parts) {
		return &t.Runs[i].Parts[k]
	}
	return nil
}

// stepIndex finds a step of t by id; -1 when it has none.
func stepIndex(t *state.Task, id string) int {
	for i := range t.Steps {
		if t.Steps[i].ID == id {
			return i
		}
	}
	return -1
}
