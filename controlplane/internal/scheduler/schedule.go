package scheduler

import (
	"context"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// schedule places what it can, commits the leases in one batch, and hands
// them to the agents' long-polls.
func (d *Dispatcher) schedule(ctx context.Context) {
	now := d.cfg.Now()
	d.mu.Lock()
	if !d.active || d.ready.len() == 0 {
		d.mu.Unlock()
		return
	}
	views := make([]NodeView, 0, len(d.nodes))
	free := 0
	for _, ns := range d.nodes {
		if ns.node.Status != state.NodeReady || ns.node.Slots <= len(ns.running) {
			continue
		}
		v := NodeView{Name: ns.node.Name, Free: ns.node.Slots - len(ns.running), Capabilities: ns.node.Capabilities,
			Running: len(ns.running), HardwareInUse: map[encoders.Backend]int{}}
		for _, l := range ns.running {
			if l.backend != "" && l.backend != encoders.BackendSoftware {
				v.HardwareInUse[l.backend]++
			}
		}
		views = append(views, v)
		free += v.Free
	}
	if free == 0 {
		d.mu.Unlock()
		return
	}
	// The oldest steps some node can take: a few more than the free
	// slots, so that steps held to one node do not starve the others.
	ready := d.ready.candidates(now.UnixMilli(), 4*free+16, supportedBy(views))
	placements := Place(ready, views, now.UnixMilli())
	if len(placements) == 0 {
		d.mu.Unlock()
		return
	}
	// Out of the queue while the leases commit, so no second pass places
	// them again.
	for _, p := range placements {
		d.ready.remove(p.StepID)
	}
	d.mu.Unlock()

	ups := make([]state.StepUpdate, len(placements))
	for i, p := range placements {
		ups[i] = state.StepUpdate{Op: state.OpAssign, TaskID: p.TaskID, StepID: p.StepID, Attempt: p.Attempt + 1, Node: p.Node, Now: now.UnixMilli()}
	}
	res, err := d.cfg.Store.StepUpdates(ctx, ups)

	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return
	}
	if err != nil {
		// Not committed (or unknown): back to the queue; a rebuild on the
		// next leader reads the truth from the log.
		for _, p := range placements {
			d.ready.push(p.Ready)
		}
		d.log.Warn("commit assignments", "err", err, "count", len(placements))
		return
	}
	for i, p := range placements {
		r := res[i]
		if r.Err != "" {
			if r.Task != nil {
				d.track(r.Task, now) // re-read: it moved on meanwhile
			}
			continue
		}
		ns := d.nodes[p.Node]
		l := &lease{taskID: p.TaskID, stepID: p.StepID, kind: p.Kind, node: p.Node, attempt: p.Attempt + 1,
			backend: p.Backend, assignedAt: now, progressAt: now, readyAt: p.ReadyAt}
		d.leases[p.StepID] = l
		wait := max(0, float64(now.UnixMilli()-max(p.ReadyAt, p.NotBefore))) / 1000
		d.cfg.Metrics.StepWait.Observe(wait)
		d.log.Debug("step assigned", append(taskAttrs(p.TaskID, p.StepID, p.Node), "step", p.Kind, "attempt", p.Attempt+1, "wait_seconds", wait)...)
		if ns == nil {
			continue // gone meanwhile: the lease expires through the timers
		}
		ns.running[p.StepID] = l
		ns.pending = append(ns.pending, api.Assignment{TaskID: p.TaskID, StepID: p.StepID, Step: p.Kind, Attempt: p.Attempt + 1, Task: r.Task.Task})
		ns.signal()
	}
}

// signal wakes the node's long-poll.
func (ns *nodeState) signal() {
	close(ns.wake)
	ns.wake = make(chan struct{})
}

// checkTimers declares silent nodes down, fails stalled steps and releases
// assignments never confirmed, then queues their steps again.
func (d *Dispatcher) checkTimers(ctx context.Context) {
	now := d.cfg.Now()
	var ups []state.StepUpdate
	var down []string
	d.mu.Lock()
	if !d.active {
		d.mu.Unlock()
		return
	}
	for name, ns := range d.nodes {
		if now.Sub(ns.lastSeen) <= ns.ttl+d.cfg.HeartbeatGrace {
			continue
		}
		down = append(down, name)
		for _, l := range ns.running {
			ups = append(ups, failUpdate(l, now, "stalled", "node "+name+" stopped sending heartbeats", true, d.cfg.Backoff(1)))
		}
		close(ns.wake)
		delete(d.nodes, name)
	}
	for _, l := range d.leases {
		if d.nodes[l.node] == nil && !contains(down, l.node) {
			// Its node is unknown (down before this leader): fail it now.
			ups = append(ups, failUpdate(l, now, "stalled", "node "+l.node+" is gone", true, d.cfg.Backoff(1)))
			continue
		}
		switch {
		case !l.confirmed && now.Sub(l.assignedAt) > d.cfg.DeliveryTimeout:
			ups = append(ups, state.StepUpdate{Op: state.OpRelease, TaskID: l.taskID, StepID: l.stepID, Attempt: l.attempt, Now: now.UnixMilli()})
			d.cancelled[l.stepID] = l.node
		case l.confirmed && now.Sub(l.progressAt) > d.cfg.StallTimeout:
			ups = append(ups, failUpdate(l, now, "stalled", "no progress for "+d.cfg.StallTimeout.String(), true, d.cfg.Backoff(1)))
			d.cancelled[l.stepID] = l.node
		}
	}
	if d.ready.len() > 0 {
		d.Kick() // a backoff may have ended; a pass with nothing to place is cheap
	}
	d.mu.Unlock()

	for _, name := range down {
		d.log.Warn("node down: no heartbeat", "node_id", name)
		if err := d.cfg.Store.SetNodeStatus(ctx, name, state.NodeDown, now.UnixMilli()); err != nil {
			d.log.Warn("record node down", "node_id", name, "err", err)
		}
	}
	if len(ups) > 0 {
		d.commitReports(ctx, ups)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func failUpdate(l *lease, now time.Time, kind, msg string, retryable bool, backoff time.Duration) state.StepUpdate {
	return state.StepUpdate{
		Op: state.OpFail, TaskID: l.taskID, StepID: l.stepID, Attempt: l.attempt, Now: now.UnixMilli(),
		Error: &api.Error{Kind: kind, Message: msg}, Retryable: retryable, Backoff: backoff.Milliseconds(),
	}
}

// commitReports applies step updates and moves the tasks on in the
// working state. It returns the results.
func (d *Dispatcher) commitReports(ctx context.Context, ups []state.StepUpdate) ([]state.StepResult, error) {
	res, err := d.cfg.Store.StepUpdates(ctx, ups)
	if err != nil {
		return nil, err
	}
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return res, nil
	}
	for i, u := range ups {
		r := res[i]
		l := d.leases[u.StepID]
		if r.Err == "" || r.Err == "stale" || r.Err == "finished" {
			if l != nil && l.attempt == u.Attempt {
				delete(d.leases, u.StepID)
				if ns := d.nodes[l.node]; ns != nil {
					delete(ns.running, u.StepID)
				}
			}
		}
		if r.Err != "" || r.Task == nil {
			continue
		}
		d.observeDone(u, r.Task)
		d.logOutcome(u, r.Task, l)
		d.track(r.Task, now)
	}
	d.Kick()
	return res, nil
}

// observeDone records metrics of a step that ended and of a task that
// ended with it.
func (d *Dispatcher) observeDone(u state.StepUpdate, t *state.Task) {
	i := -1
	for j := range t.Steps {
		if t.Steps[j].ID == u.StepID {
			i = j
		}
	}
	if i < 0 {
		return
	}
	s := t.Steps[i]
	if u.Op == state.OpFail && u.Error != nil {
		kind := s.Kind
		if encoders.Kind(kind).Valid() {
			kind = "encode"
		}
		d.cfg.Metrics.StepFailures.WithLabelValues(kind, u.Error.Kind).Inc()
	}
	if u.Op == state.OpComplete && s.StartedAt != nil && s.FinishedAt != nil {
		encoder := "none"
		if enc := encoderOf(s.Options); enc != "" {
			encoder = enc
		}
		d.cfg.Metrics.StepDuration.WithLabelValues(s.Kind, encoder).Observe(float64(*s.FinishedAt-*s.StartedAt) / 1000)
	}
	if t.Status.Finished() {
		d.cfg.Metrics.TasksFinished.WithLabelValues(string(t.Kind), string(t.Status)).Inc()
	}
}

// logOutcome logs a step's committed outcome and, when it ended its task,
// the task's end. l is the step's lease, if this leader had one.
func (d *Dispatcher) logOutcome(u state.StepUpdate, t *state.Task, l *lease) {
	node, kind := "", ""
	for _, s := range t.Steps {
		if s.ID == u.StepID {
			kind = s.Kind
			if s.Node != nil {
				node = *s.Node
			}
		}
	}
	if l != nil {
		node = l.node
	}
	attrs := append(taskAttrs(t.ID, u.StepID, node), "step", kind, "attempt", u.Attempt)
	switch u.Op {
	case state.OpFail:
		var errKind, msg string
		if u.Error != nil {
			errKind, msg = u.Error.Kind, u.Error.Message
		}
		d.log.Warn("step failed", append(attrs, "error_kind", errKind, "error", msg, "retryable", u.Retryable)...)
	case state.OpRelease:
		d.log.Info("step released", attrs...)
	case state.OpComplete:
		d.log.Debug("step completed", attrs...)
	}
	if t.Status.Finished() {
		end := append(taskAttrs(t.ID, u.StepID, node), "kind", t.Kind, "status", t.Status)
		if t.Error != nil {
			end = append(end, "error_kind", t.Error.Kind)
		}
		d.log.Info("task finished", end...)
	}
}

// taskAttrs are the attributes of every log line about a task: the task,
// the step concerned and the node (agent) running it, "" where none
// applies, so that a search by any of them finds every line.
func taskAttrs(taskID, stepID, node string) []any {
	return []any{"task_id", taskID, "step_id", stepID, "node_id", node}
}
