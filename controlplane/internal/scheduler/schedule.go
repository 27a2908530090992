package scheduler

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// schedule places what it can and commits the leases in one batch; as
// they apply, Applied hands them to the agents' long-polls. Placement runs
// outside d.mu, so that agents' calls and applied changes never wait for
// it.
func (d *Dispatcher) schedule(ctx context.Context) {
	now := d.cfg.Now()
	d.mu.Lock()
	if !d.active || d.ready.len() == 0 {
		d.mu.Unlock()
		return
	}
	views, free := d.freeViews()
	if free == 0 {
		d.mu.Unlock()
		return
	}
	// The oldest steps some node can take: a few more than the free
	// slots, so that steps held to one node do not starve the others.
	supported, capped := supportedBy(views), d.capped()
	ready := d.ready.candidates(now.UnixMilli(), 4*free+16, func(r Ready) bool { return supported(r) && capped(r) })
	d.mu.Unlock()

	placements := Place(ready, views, now.UnixMilli())
	if len(placements) == 0 {
		return
	}
	// Out of the queue while the leases commit, so that no second pass
	// places them again; a step that left the queue meanwhile (its task
	// was cancelled) is not placed.
	d.mu.Lock()
	if !d.active {
		d.mu.Unlock()
		return
	}
	ups := make([]state.StepUpdate, 0, len(placements))
	placed := placements[:0]
	for _, p := range placements {
		if r, ok := d.ready.items[p.StepID]; !ok || r.Attempt != p.Attempt {
			continue
		}
		d.ready.remove(p.StepID)
		if ns := d.nodes[p.Node]; ns != nil {
			ns.placed = now
		}
		placed = append(placed, p)
		d.started(p.Project, p.TaskID)
		ups = append(ups, state.StepUpdate{Op: state.OpAssign, TaskID: p.TaskID, StepID: p.StepID, Attempt: p.Attempt + 1, Node: p.Node, Now: now.UnixMilli()})
	}
	d.mu.Unlock()
	if len(ups) == 0 {
		return
	}
	res, err := d.cfg.Store.StepUpdates(ctx, ups)

	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return
	}
	for i, p := range placed {
		switch {
		case err != nil:
			// Not committed (or not known to be): back to the queue, unless
			// it did commit after all and the lease it made is there.
			if l := d.leases[p.StepID]; l == nil || l.attempt != p.Attempt+1 {
				d.ready.push(p.Ready)
			}
			if i == 0 {
				d.log.Warn("commit assignments", "err", err, "count", len(placed))
			}
		case res[i].Err == "":
			// Applied: count its hardware session, unless the step has
			// already ended (its agent was quick).
			if l := d.leases[p.StepID]; l != nil && l.attempt == p.Attempt+1 {
				l.backend = p.Backend
			}
		default:
			// Refused: the task moved on meanwhile. Its state now (no older
			// than the changes this dispatcher has followed) says where.
			if t, ok := d.cfg.Store.State().TaskRecord(p.TaskID); ok {
				d.track(t, now)
			}
		}
	}
}

// freeViews describes the ready nodes with free slots, for placement, and
// counts their free slots: least recently placed first (Place gives ties
// to the node listed first). Callers hold d.mu.
func (d *Dispatcher) freeViews() ([]NodeView, int) {
	views := make([]NodeView, 0, len(d.nodes))
	var placed []time.Time
	free := 0
	for _, ns := range d.nodes {
		if ns.node.Status != state.NodeReady || ns.node.Slots <= len(ns.running) {
			continue
		}
		placed = append(placed, ns.placed)
		v := NodeView{Name: ns.node.Name, Free: ns.node.Slots - len(ns.running), Capabilities: ns.node.Capabilities, Running: len(ns.running), Parts: ns.node.Parts}
		for _, l := range ns.running {
			if l.backend != "" && l.backend != encoders.BackendSoftware {
				if v.HardwareInUse == nil {
					v.HardwareInUse = map[encoders.Backend]int{}
				}
				v.HardwareInUse[l.backend]++
			}
		}
		views = append(views, v)
		free += v.Free
	}
	order := make([]int, len(views))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := placed[a].Compare(placed[b]); c != 0 {
			return c
		}
		return cmp.Compare(views[a].Name, views[b].Name)
	})
	sorted := make([]NodeView, len(views))
	for i, k := range order {
		sorted[i] = views[k]
	}
	return sorted, free
}

// checkTimers declares silent nodes down and releases or fails the steps
// that stopped moving: leases their agent never took in, reports that
// never arrived, progress that stalled.
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
			if !l.releasing {
				l.releasing = true
				ups = append(ups, failUpdate(l, now, "stalled", "node "+name+" stopped sending heartbeats", true, d.cfg.Backoff(1)))
			}
		}
		close(ns.wake)
		delete(d.nodes, name)
		d.hwCodecs = nil
	}
	d.eachLease(func(l *lease) {
		if l.releasing || slices.Contains(down, l.node) {
			return
		}
		ns := d.nodes[l.node]
		if ns == nil {
			if l.seq == 0 && !l.inherited {
				ups = append(ups, d.release(l, now, "node "+l.node+" is gone"))
				return
			}
			// Its node went down before this leader: fail it now.
			l.releasing = true
			ups = append(ups, failUpdate(l, now, "stalled", "node "+l.node+" is gone", true, d.cfg.Backoff(1)))
			return
		}
		half := max(ns.ttl/2, time.Second)
		switch {
		case !l.received && now.Sub(l.offeredAt) > cmp.Or(d.cfg.DeliveryTimeout, half):
			ups = append(ups, d.release(l, now, "its node did not take it in"))
			ns.cancel[l.stepID] = true
		case !l.reportingSince.IsZero() && now.Sub(l.reportingSince) > cmp.Or(d.cfg.ReportTimeout, half):
			ups = append(ups, d.release(l, now, "its report did not arrive"))
			ns.cancel[l.stepID] = true
		case l.received && l.reportingSince.IsZero() && now.Sub(l.progressAt) > d.cfg.StallTimeout:
			l.releasing = true
			ups = append(ups, failUpdate(l, now, "stalled", "no progress for "+d.cfg.StallTimeout.String(), true, d.cfg.Backoff(1)))
			ns.cancel[l.stepID] = true
		}
	})
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
	d.propose(ctx, ups)
}

func failUpdate(l *lease, now time.Time, kind ittybit.ErrorKind, msg string, retryable bool, backoff time.Duration) state.StepUpdate {
	return state.StepUpdate{
		Op: state.OpFail, TaskID: l.taskID, StepID: l.stepID, Attempt: l.attempt, Now: now.UnixMilli(),
		Error: &api.Error{Kind: kind, Message: msg}, Retryable: retryable, Backoff: backoff.Milliseconds(),
	}
}

// propose commits step updates the leader decided (releases, failures);
// Applied follows them as they apply. One that does not commit is
// proposed again by the timers, whose conditions still hold.
func (d *Dispatcher) propose(ctx context.Context, ups []state.StepUpdate) {
	if len(ups) == 0 {
		return
	}
	if _, err := d.cfg.Store.StepUpdates(ctx, ups); err != nil {
		d.log.Warn("commit step updates", "err", err, "count", len(ups))
		d.mu.Lock()
		for _, u := range ups {
			if l := d.leaseOf(u.StepID, u.Attempt); l != nil {
				l.releasing = false
			}
		}
		d.mu.Unlock()
	}
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
		d.cfg.Metrics.StepFailures.WithLabelValues(kind, string(u.Error.Kind)).Inc()
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
	if i, k := unitIndex(t, u.StepID); i >= 0 {
		at := t.Steps[i].Node
		if k >= 0 {
			at = t.Steps[i].Parts[k].Node
		}
		kind = t.Steps[i].Kind
		if at != nil {
			node = *at
		}
	}
	if l != nil {
		node = l.node
	}
	attrs := append(taskAttrs(t.ID, u.StepID, node), "step", kind, "attempt", u.Attempt)
	switch u.Op {
	case state.OpFail:
		var errKind ittybit.ErrorKind
		var msg string
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
