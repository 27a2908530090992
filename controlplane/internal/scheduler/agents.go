package scheduler

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Register records an agent (again) and starts watching its heartbeats.
func (d *Dispatcher) Register(ctx context.Context, reg api.NodeRegistration) (api.NodeRegistered, error) {
	if !d.Active() {
		return api.NodeRegistered{}, ErrNotActive
	}
	now := d.cfg.Now()
	slots := reg.Slots
	if slots <= 0 {
		slots = 1
	}
	n := state.Node{Name: reg.Name, Capabilities: reg.Capabilities, Slots: slots, Version: reg.Version, RegisteredAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()}
	if err := d.cfg.Store.RegisterNode(ctx, n); err != nil {
		return api.NodeRegistered{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return api.NodeRegistered{}, ErrNotActive
	}
	n.Status = state.NodeReady
	ns := d.nodes[reg.Name]
	if ns == nil {
		ns = &nodeState{running: map[string]*lease{}, wake: make(chan struct{})}
		d.nodes[reg.Name] = ns
	}
	ns.node, ns.lastSeen = n, now
	ns.ttl = d.ttl(len(d.nodes))
	// A restarted agent runs nothing: what it held is lost.
	var lost []state.StepUpdate
	for _, l := range ns.running {
		lost = append(lost, failUpdate(l, now, "stalled", "node "+reg.Name+" restarted", true, d.cfg.Backoff(1)))
	}
	d.log.Info("node registered", "node_id", reg.Name, "slots", slots, "capabilities", len(reg.Capabilities))
	if len(lost) > 0 {
		go func() { _, _ = d.commitReports(context.Background(), lost) }()
	}
	d.Kick()
	return d.timing(ns), nil
}

// timing is the heartbeat interval and TTL an agent is told. Callers hold
// d.mu.
func (d *Dispatcher) timing(ns *nodeState) api.NodeRegistered {
	ttl := d.ttl(len(d.nodes))
	return api.NodeRegistered{Name: ns.node.Name, IntervalMillis: (ttl / 3).Milliseconds(), TTLMillis: ttl.Milliseconds()}
}

// Heartbeat records that an agent lives and what its steps have done, and
// says which steps it must stop.
func (d *Dispatcher) Heartbeat(name string, hb api.Heartbeat) (api.HeartbeatReply, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return api.HeartbeatReply{}, ErrNotActive
	}
	ns := d.nodes[name]
	if ns == nil {
		return api.HeartbeatReply{}, ErrUnknownNode
	}
	ns.lastSeen = now
	ns.ttl = d.ttl(len(d.nodes))
	var cancel []string
	for _, rs := range hb.Running {
		l := ns.running[rs.StepID]
		if l == nil || l.attempt != rs.Attempt {
			cancel = append(cancel, rs.StepID) // not this agent's (any more)
			continue
		}
		l.confirmed = true
		if rs.Progress > l.progress.Progress || rs.Frames > l.progress.Frames || rs.MediaSeconds > l.progress.MediaSeconds {
			l.progressAt = now
		}
		l.progress = rs
	}
	for id, node := range d.cancelled {
		if node == name {
			if !contains(cancel, id) {
				cancel = append(cancel, id)
			}
			delete(d.cancelled, id)
		}
	}
	if hb.Draining && ns.node.Status == state.NodeReady {
		ns.node.Status = state.NodeDraining
	}
	t := d.timing(ns)
	return api.HeartbeatReply{IntervalMillis: t.IntervalMillis, TTLMillis: t.TTLMillis, Cancel: cancel}, nil
}

// Assignments returns the steps leased to an agent, waiting up to wait for
// one to appear (a long-poll: an idle fleet starts work at once).
func (d *Dispatcher) Assignments(ctx context.Context, name string, wait time.Duration) ([]api.Assignment, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		if !d.active {
			d.mu.Unlock()
			return nil, ErrNotActive
		}
		ns := d.nodes[name]
		if ns == nil {
			d.mu.Unlock()
			return nil, ErrUnknownNode
		}
		ns.lastSeen = d.cfg.Now() // polling is a sign of life too
		if len(ns.pending) > 0 {
			out := ns.pending
			ns.pending = nil
			d.mu.Unlock()
			return out, nil
		}
		wake := ns.wake
		d.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			return []api.Assignment{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Report records an agent's outcome of a step. A report from another
// attempt than the one holding the step is ErrStale.
func (d *Dispatcher) Report(ctx context.Context, stepID string, rep api.StepReport) error {
	if !d.Active() {
		return ErrNotActive
	}
	now := d.cfg.Now()
	d.mu.Lock()
	l := d.leases[stepID]
	var taskID string
	failures := 0
	if l != nil {
		taskID = l.taskID
	}
	d.mu.Unlock()
	if taskID == "" {
		taskID = rep.TaskID
	}
	if taskID == "" {
		// No lease here: find the task to let the state judge the attempt.
		t, ok := d.taskOfStep(stepID)
		if !ok {
			return ErrNotFound
		}
		taskID = t.ID
	}
	if t, ok := d.cfg.Store.State().TaskRecord(taskID); ok {
		for i := range t.Steps {
			if t.Steps[i].ID == stepID && i < len(t.Runs) {
				failures = t.Runs[i].Failures
			}
		}
	}
	u := state.StepUpdate{TaskID: taskID, StepID: stepID, Attempt: rep.Attempt, Now: now.UnixMilli()}
	switch rep.Outcome {
	case api.OutcomeCompleted:
		u.Op, u.Output, u.Options = state.OpComplete, rep.Output, rep.Options
		u.TaskOutput = urlOf(rep.Output)
	case api.OutcomeFailed:
		u.Op, u.Error, u.Retryable = state.OpFail, rep.Error, rep.Retryable
		u.Backoff = d.cfg.Backoff(failures + 1).Milliseconds()
	case api.OutcomeReleased:
		u.Op = state.OpRelease
	default:
		return ErrNotFound
	}
	res, err := d.commitReports(ctx, []state.StepUpdate{u})
	if err != nil {
		return err
	}
	switch res[0].Err {
	case "":
		return nil
	case "not_found":
		return ErrNotFound
	}
	return ErrStale
}

// taskOfStep finds the active task holding a step.
func (d *Dispatcher) taskOfStep(stepID string) (*state.Task, bool) {
	for _, t := range d.cfg.Store.State().ActiveTasks() {
		for _, s := range t.Steps {
			if s.ID == stepID {
				return t, true
			}
		}
	}
	return nil, false
}

// Drain stops giving an agent work; what it runs, it finishes or hands
// back.
func (d *Dispatcher) Drain(ctx context.Context, name string) error {
	d.mu.Lock()
	ns := d.nodes[name]
	if !d.active {
		d.mu.Unlock()
		return ErrNotActive
	}
	if ns == nil {
		d.mu.Unlock()
		return ErrUnknownNode
	}
	ns.node.Status = state.NodeDraining
	d.mu.Unlock()
	return d.cfg.Store.SetNodeStatus(ctx, name, state.NodeDraining, d.cfg.Now().UnixMilli())
}

// TasksCreated queues the first steps of new tasks.
func (d *Dispatcher) TasksCreated(ids []string) {
	st := d.cfg.Store.State()
	now := d.cfg.Now()
	d.mu.Lock()
	if d.active {
		for _, id := range ids {
			if t, ok := st.TaskRecord(id); ok {
				d.track(t, now)
				step := ""
				if i := t.Current(); i >= 0 {
					step = t.Steps[i].ID
				}
				d.log.Info("task queued", append(taskAttrs(t.ID, step, ""), "kind", t.Kind)...)
			}
		}
	}
	d.mu.Unlock()
	d.Kick()
}

// TaskCancelled counts a cancelled task, drops its queued step and tells
// the agents running its steps to stop.
func (d *Dispatcher) TaskCancelled(t *state.Task) {
	d.cfg.Metrics.TasksFinished.WithLabelValues(string(t.Kind), string(api.TaskCancelled)).Inc()
	d.mu.Lock()
	defer d.mu.Unlock()
	step, node := "", ""
	if i := t.Current(); i >= 0 {
		step = t.Steps[i].ID
		if n := t.Steps[i].Node; n != nil {
			node = *n
		}
	}
	d.log.Info("task cancelled", taskAttrs(t.ID, step, node)...)
	if !d.active {
		return
	}
	for _, s := range t.Steps {
		d.ready.remove(s.ID)
		if l := d.leases[s.ID]; l != nil {
			d.cancelled[s.ID] = l.node
			delete(d.leases, s.ID)
			if ns := d.nodes[l.node]; ns != nil {
				delete(ns.running, s.ID)
			}
		}
	}
}

// Progress returns a running step's progress, kept in the leader's memory.
func (d *Dispatcher) Progress(stepID string) (float64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.leases[stepID]
	if l == nil {
		return 0, false
	}
	return l.progress.Progress, true
}

// Nodes describes the agents the leader knows, live or not.
func (d *Dispatcher) Nodes() []api.NodeInfo {
	recorded := d.cfg.Store.State().Nodes()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.NodeInfo
	for _, n := range recorded {
		info := api.NodeInfo{Name: n.Name, Status: string(n.Status), Slots: n.Slots, Capabilities: n.Capabilities}
		if ns := d.nodes[n.Name]; ns != nil {
			info.Status, info.Running, info.LastSeenMs = string(ns.node.Status), len(ns.running), ns.lastSeen.UnixMilli()
		} else if d.active {
			info.Status = string(state.NodeDown)
		}
		out = append(out, info)
	}
	return out
}

// encoderOf reads "encoder" from an encode step's options.
func encoderOf(options json.RawMessage) string {
	var o struct {
		Encoder string `json:"encoder"`
	}
	_ = json.Unmarshal(options, &o)
	return o.Encoder
}

// urlOf reads "url" from a file object.
func urlOf(output json.RawMessage) string {
	var f struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(output, &f)
	return f.URL
}
