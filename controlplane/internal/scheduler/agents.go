package scheduler

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
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
	n := state.Node{Name: reg.Name, Capabilities: reg.Capabilities, Slots: slots, Version: reg.Version, Parts: reg.Parts, RegisteredAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()}
	if err := d.cfg.Store.RegisterNode(ctx, n); err != nil {
		return api.NodeRegistered{}, err
	}
	d.mu.Lock()
	if !d.active {
		d.mu.Unlock()
		return api.NodeRegistered{}, ErrNotActive
	}
	n.Status = state.NodeReady
	ns := d.nodes[reg.Name]
	if ns == nil {
		ns = newNodeState(n, now, 0)
		d.nodes[reg.Name] = ns
	}
	ns.node, ns.lastSeen = n, now
	ns.ttl = d.ttl(len(d.nodes))
	d.hwCodecs = nil // the fleet changed
	// A restarted agent runs nothing: what it held is lost.
	var lost []state.StepUpdate
	for _, l := range ns.running {
		if !l.releasing {
			l.releasing = true
			lost = append(lost, failUpdate(l, now, "stalled", "node "+reg.Name+" restarted", true, d.cfg.Backoff(1)))
		}
	}
	reply := d.timing(ns)
	d.mu.Unlock()
	d.log.Info("node registered", "node_id", reg.Name, "slots", slots, "capabilities", len(reg.Capabilities))
	d.propose(ctx, lost)
	d.Kick()
	return reply, nil
}

// progressEvery is the heartbeat period of a working agent: a second,
// and longer past 200 nodes, so that a busy fleet sends the leader at most
// about 200 heartbeats a second.
func (d *Dispatcher) progressEvery(nodes int) time.Duration {
	return max(time.Second, time.Duration(nodes)*time.Second/200)
}

// timing is the heartbeat interval and TTL an agent is told. Callers hold
// d.mu.
func (d *Dispatcher) timing(ns *nodeState) api.NodeRegistered {
	ttl := d.ttl(len(d.nodes))
	reply := api.NodeRegistered{Name: ns.node.Name, IntervalMillis: (ttl / 3).Milliseconds(), TTLMillis: ttl.Milliseconds()}
	if d.cfg.SplitSeconds > 0 {
		reply.CountFramesFrom = d.cfg.SplitMinSeconds
	}
	return reply
}

// Heartbeat records that an agent lives and what its steps have done, and
// says which steps it must stop. It reconciles what the agent holds with
// what this leader leased to it: a step the agent received but no longer
// holds (it ended and its report was lost, or the agent dropped it) is
// released at once and runs elsewhere.
func (d *Dispatcher) Heartbeat(ctx context.Context, name string, hb api.Heartbeat) (api.HeartbeatReply, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	if !d.active {
		d.mu.Unlock()
		return api.HeartbeatReply{}, ErrNotActive
	}
	ns := d.nodes[name]
	if ns == nil {
		d.mu.Unlock()
		return api.HeartbeatReply{}, ErrUnknownNode
	}
	ns.lastSeen = now
	ns.ttl = d.ttl(len(d.nodes))
	var cancel []string
	listed := make(map[string]bool, len(hb.Running))
	for _, rs := range hb.Running {
		l := ns.running[rs.StepID]
		if l == nil || l.attempt != rs.Attempt {
			cancel = append(cancel, rs.StepID) // not this agent's (any more)
			continue
		}
		listed[rs.StepID] = true
		l.received, l.listed = true, true
		if rs.Progress > l.progress.Progress || rs.Frames > l.progress.Frames || rs.MediaSeconds > l.progress.MediaSeconds {
			l.progressAt = now
		}
		if isEncode(l.kind) {
			d.rate.add(now, rs.MediaSeconds-l.progress.MediaSeconds)
		}
		l.progress = rs
		if rs.Reporting {
			// Counted from when the agent began to report (not from when
			// the leader heard of it), never before the lease.
			since := now.Add(-time.Duration(max(rs.ReportingMillis, 0)) * time.Millisecond)
			if since.Before(l.offeredAt) {
				since = l.offeredAt
			}
			if l.reportingSince.IsZero() || since.Before(l.reportingSince) {
				l.reportingSince = since
			}
		}
	}
	var ups []state.StepUpdate
	if hb.Epoch == d.epoch {
		d.acknowledge(ns, hb.Seq)
		for id, l := range ns.running {
			if listed[id] || l.releasing {
				continue
			}
			// Received (acknowledged, or listed by an earlier heartbeat),
			// or leased by an earlier leader, and not held: whatever its
			// agent did with it, nobody will report it.
			if (l.seq != 0 && l.seq <= hb.Seq) || l.listed || l.inherited {
				ups = append(ups, d.release(l, now, "not held by its node"))
				cancel = append(cancel, id)
			}
		}
	}
	for id := range ns.cancel {
		if !slices.Contains(cancel, id) {
			cancel = append(cancel, id)
		}
		delete(ns.cancel, id)
	}
	if hb.Draining && ns.node.Status == state.NodeReady {
		ns.node.Status = state.NodeDraining
	}
	t, epoch, progress := d.timing(ns), d.epoch, d.progressEvery(len(d.nodes))
	d.mu.Unlock()
	d.propose(ctx, ups)
	return api.HeartbeatReply{IntervalMillis: t.IntervalMillis, TTLMillis: t.TTLMillis, Cancel: cancel, Epoch: epoch,
		ProgressMillis: progress.Milliseconds()}, nil
}

// acknowledge marks the leases the agent says it has received. Callers
// hold d.mu.
func (d *Dispatcher) acknowledge(ns *nodeState, seq uint64) {
	for _, l := range ns.running {
		if l.seq != 0 && l.seq <= seq {
			l.received = true
		}
	}
}

// release marks a lease as being released and returns the update that
// releases it: its step is queued again, for another node where one fits,
// without counting a failure. Callers hold d.mu.
func (d *Dispatcher) release(l *lease, now time.Time, why string) state.StepUpdate {
	l.releasing = true
	d.log.Warn("releasing step", append(taskAttrs(l.taskID, l.stepID, l.node), "step", l.kind, "attempt", l.attempt, "reason", why)...)
	return state.StepUpdate{Op: state.OpRelease, TaskID: l.taskID, StepID: l.stepID, Attempt: l.attempt, Now: now.UnixMilli(), Avoid: true}
}

// Assignments returns the steps leased to an agent, waiting up to wait for
// one to appear (a long-poll: an idle fleet starts work at once). rcv is
// what the agent has received so far: an assignment this leader sent after
// it was lost on the way, and is sent again.
func (d *Dispatcher) Assignments(ctx context.Context, name string, wait time.Duration, rcv api.Received) (api.Assignments, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	first := true
	for {
		d.mu.Lock()
		if !d.active {
			d.mu.Unlock()
			return api.Assignments{}, ErrNotActive
		}
		ns := d.nodes[name]
		if ns == nil {
			d.mu.Unlock()
			return api.Assignments{}, ErrUnknownNode
		}
		ns.lastSeen = d.cfg.Now() // polling is a sign of life too
		if first && rcv.Epoch == d.epoch {
			d.acknowledge(ns, rcv.Seq)
			for _, l := range ns.running {
				if l.seq > rcv.Seq && !l.releasing {
					ns.offer(l) // its answer never arrived
				}
			}
		}
		first = false
		if out := d.deliver(ns); len(out) > 0 {
			epoch := d.epoch
			d.mu.Unlock()
			return api.Assignments{Epoch: epoch, Assignments: out}, nil
		}
		wake, epoch := ns.wake, d.epoch
		d.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			return api.Assignments{Epoch: epoch, Assignments: []api.Assignment{}}, nil
		case <-ctx.Done():
			return api.Assignments{}, ctx.Err()
		}
	}
}

// deliver hands out the node's pending leases, each with the next
// delivery sequence number. Callers hold d.mu.
func (d *Dispatcher) deliver(ns *nodeState) []api.Assignment {
	var out []api.Assignment
	for _, l := range ns.pending {
		if !l.queued || d.leaseOf(l.stepID, l.attempt) != l || l.releasing {
			continue // handed out, ended, released or cancelled meanwhile
		}
		l.queued = false
		out = append(out, d.hand(ns, l))
	}
	ns.pending = ns.pending[:0]
	return out
}

// hand gives a lease its delivery sequence number and the assignment that
// carries it. Callers hold d.mu.
func (d *Dispatcher) hand(ns *nodeState, l *lease) api.Assignment {
	ns.seq++
	l.seq = ns.seq
	return d.assignment(l)
}

// assignment is what the agent is sent of a lease: the step, its task,
// and the credentials of the task's S3 connections the step needs (made
// afresh each time: a rotated connection's next attempt gets the new
// ones).
func (d *Dispatcher) assignment(l *lease) api.Assignment {
	a := api.Assignment{TaskID: l.taskID, StepID: l.stepID, Step: l.kind, Attempt: l.attempt, Seq: l.seq, Task: l.task.Assigned(), Part: l.part}
	if d.cfg.Access != nil && l.part == nil {
		a.Task.S3 = d.cfg.Access(&l.task.Task, l.kind)
	}
	return a
}

// Report records an agent's outcome of a step. A report from another
// attempt than the one holding the step is ErrStale. A completed step
// whose agent asks to continue (rep.Continue) has its task's next step
// leased to the same agent in the same commit and returned in the answer,
// when that agent is where the step would go anyway: it holds the step's
// files, has the slot the report frees, and no node has hardware for the
// step that this one lacks. That spares the step a queue pass, a commit
// and a long-poll.
func (d *Dispatcher) Report(ctx context.Context, stepID string, rep api.StepReport) (api.ReportReply, error) {
	now := d.cfg.Now()
	reply := api.ReportReply{Status: "recorded"}
	d.mu.Lock()
	if !d.active {
		d.mu.Unlock()
		return reply, ErrNotActive
	}
	taskID := rep.TaskID
	l := d.leaseOf(stepID, rep.Attempt)
	if l != nil {
		taskID = l.taskID
	} else if o := d.leases[stepID]; o != nil {
		taskID = o.taskID
	}
	var next, split *state.StepUpdate
	if l != nil && rep.Outcome == api.OutcomeCompleted {
		if rep.Continue {
			next = d.continuation(l, now)
		}
		split = d.split(l, rep.Output, now)
	}
	d.mu.Unlock()
	if taskID == "" {
		// No lease here: find the task to let the state judge the attempt.
		t, ok := d.taskOfStep(stepID)
		if !ok {
			return reply, ErrNotFound
		}
		taskID = t.ID
	}
	u := state.StepUpdate{TaskID: taskID, StepID: stepID, Attempt: rep.Attempt, Now: now.UnixMilli()}
	switch rep.Outcome {
	case api.OutcomeCompleted:
		u.Op, u.Output, u.Options = state.OpComplete, rep.Output, rep.Options
		u.TaskOutput = urlOf(rep.Output)
	case api.OutcomeFailed:
		u.Op, u.Error, u.Retryable = state.OpFail, rep.Error, rep.Retryable
		u.Backoff = d.cfg.Backoff(d.failures(taskID, stepID) + 1).Milliseconds()
	case api.OutcomeReleased:
		u.Op = state.OpRelease
	default:
		return reply, ErrNotFound
	}
	ups := []state.StepUpdate{u}
	if next != nil {
		ups = append(ups, *next)
	}
	if split != nil {
		ups = append(ups, *split)
	}
	res, err := d.cfg.Store.StepUpdates(ctx, ups)
	if next != nil {
		reply.Assignments = d.handOver(next, err == nil && res[1].Err == "")
	}
	if err != nil {
		return reply, err
	}
	switch res[0].Err {
	case "":
		return reply, nil
	case "not_found":
		return reply, ErrNotFound
	}
	return reply, ErrStale
}

// split decides, as a video task's probe reports, whether its encode step
// runs in parts, and returns the update that splits it (nil when it does
// not). Callers hold d.mu.
func (d *Dispatcher) split(l *lease, output json.RawMessage, now time.Time) *state.StepUpdate {
	t := l.task
	if d.cfg.SplitSeconds <= 0 || l.kind != api.StepProbe || l.part != nil || t == nil ||
		(t.Kind != encoders.KindVideo && t.Kind != encoders.KindAdaptive) {
		return nil
	}
	var info encoders.MediaInfo
	if json.Unmarshal(output, &info) != nil || info.Duration < d.cfg.SplitMinSeconds ||
		(t.Kind == encoders.KindVideo && !info.FramesCounted) {
		return nil
	}
	free := 0 // on agents that run parts; the probe's slot counts, free once this report is in
	for _, ns := range d.nodes {
		if ns.node.Status == state.NodeReady && ns.node.Parts {
			free += max(0, ns.node.Slots-len(ns.running))
			if ns.node.Name == l.node {
				free++
			}
		}
	}
	if free < 2 {
		return nil
	}
	spec := encoders.Spec{Kind: t.Kind, Input: t.Input, Options: t.Options}
	if t.Output != nil {
		spec.Output = *t.Output
	}
	plan, err := encoders.NewPlan(spec, info, encoders.BackendSoftware)
	if err != nil {
		return nil // the probe refused it already; nothing to split
	}
	var parts []encoders.Part
	switch {
	case t.Kind == encoders.KindAdaptive && info.FramesCounted:
		// Each rendition in runs of whole segments, and the sound; each
		// rendition whole where the ladder cannot be cut in time.
		if parts, err = encoders.SplitLadder(plan, info.Frames, d.cfg.SplitSeconds); err != nil {
			d.log.Debug("not split in time", append(taskAttrs(t.ID, l.stepID, l.node), "reason", err.Error())...)
			parts, err = encoders.SplitRenditions(plan)
		}
	case t.Kind == encoders.KindAdaptive:
		parts, err = encoders.SplitRenditions(plan) // each rendition whole, and the sound
	default:
		parts, err = encoders.SplitBalanced(plan, info.Frames, d.cfg.SplitSeconds, free)
	}
	if err != nil {
		d.log.Debug("not split", append(taskAttrs(t.ID, l.stepID, l.node), "reason", err.Error())...)
		return nil
	}
	enc := -1
	for i, s := range t.Steps {
		if s.Kind == string(t.Kind) {
			enc = i
		}
	}
	if enc < 0 {
		return nil
	}
	stepID := t.Steps[enc].ID
	out := make([]api.Part, len(parts))
	for k, p := range parts {
		out[k] = api.Part{ID: api.PartID(stepID, p.Index), Index: p.Index, Kind: string(p.Kind), Start: p.Start, End: p.End,
			FirstFrame: p.First, Frames: p.Frames}
		if p.Kind == encoders.PartRendition {
			r := p.Rendition
			out[k].Rendition = &r
		}
	}
	d.cfg.Metrics.Splits.Inc()
	d.log.Info("step split", append(taskAttrs(t.ID, stepID, ""), "parts", len(out), "frames", info.Frames)...)
	return &state.StepUpdate{Op: state.OpSplit, TaskID: t.ID, StepID: stepID, Now: now.UnixMilli(), Parts: out}
}

// continuation returns the lease of l's task's next step to l's node, when
// that node is where it belongs, and reserves it for the report's answer.
// Callers hold d.mu.
func (d *Dispatcher) continuation(l *lease, now time.Time) *state.StepUpdate {
	ns := d.nodes[l.node]
	if ns == nil || ns.node.Status != state.NodeReady || len(ns.running) > ns.node.Slots || l.task == nil {
		return nil
	}
	t := l.task
	i := stepIndex(t, l.stepID)
	if i < 0 || i+1 >= len(t.Steps) {
		return nil
	}
	r := readyOf(t, i+1, -1)
	if r.Avoid == l.node || r.NotBefore > now.UnixMilli() {
		return nil
	}
	view := NodeView{Name: ns.node.Name, Free: 1, Capabilities: ns.node.Capabilities, Running: len(ns.running) - 1}
	for _, o := range ns.running {
		if o.backend != "" && o.backend != encoders.BackendSoftware {
			if view.HardwareInUse == nil {
				view.HardwareInUse = map[encoders.Backend]int{}
			}
			view.HardwareInUse[o.backend]++
		}
	}
	backend, ok := fits(&view, r)
	if !ok || (r.IsEncode() && r.Codec != "" && backend == encoders.BackendSoftware && d.hardwareAnywhere(r.Codec)) {
		return nil
	}
	d.chained[t.Steps[i+1].ID] = backend
	return &state.StepUpdate{Op: state.OpAssign, TaskID: t.ID, StepID: t.Steps[i+1].ID, Attempt: r.Attempt + 1, Node: l.node, Now: now.UnixMilli()}
}

// hardwareAnywhere reports whether any live node has a hardware encoder for
// the codec. The set is worked out again only after the fleet changed.
// Callers hold d.mu.
func (d *Dispatcher) hardwareAnywhere(codec string) bool {
	if d.hwCodecs == nil {
		d.hwCodecs = map[string]bool{}
		for _, ns := range d.nodes {
			for _, c := range ns.node.Capabilities {
				if c.Available && c.Backend != encoders.BackendSoftware {
					d.hwCodecs[c.Codec] = true
				}
			}
		}
	}
	return d.hwCodecs[codec]
}

// handOver delivers a continuation's lease in the report's answer, once
// it has applied; when it did not (or its answer may not reach the
// agent), the lease, if any, goes the usual way, by long-poll.
func (d *Dispatcher) handOver(next *state.StepUpdate, applied bool) api.Assignments {
	d.mu.Lock()
	defer d.mu.Unlock()
	backend := d.chained[next.StepID]
	delete(d.chained, next.StepID)
	l := d.leases[next.StepID]
	if l == nil || l.attempt != next.Attempt {
		return api.Assignments{}
	}
	l.backend = backend
	ns := d.nodes[l.node]
	if ns == nil {
		return api.Assignments{}
	}
	if !applied {
		ns.offer(l)
		return api.Assignments{}
	}
	if l.seq != 0 || l.queued || l.handed {
		return api.Assignments{} // delivered, or on its way, by long-poll
	}
	// Answers to reports travel side by side with the long-poll's, and
	// may overtake each other: the lease goes without a sequence number,
	// so that the agent's acknowledgement (the long-poll's order) never
	// speaks for it. It is received once listed, or released after the
	// delivery timeout.
	l.handed = true
	a := d.assignment(l)
	a.Seq = 0
	return api.Assignments{Epoch: d.epoch, Assignments: []api.Assignment{a}}
}

// failures is how often a step has failed so far.
func (d *Dispatcher) failures(taskID, stepID string) int {
	t, ok := d.cfg.Store.State().TaskRecord(taskID)
	if !ok {
		return 0
	}
	i, k := unitIndex(t, stepID)
	if run := runOf(t, i, k); run != nil {
		return run.Failures
	}
	return 0
}

// taskOfStep finds the active task holding a step.
func (d *Dispatcher) taskOfStep(stepID string) (*state.Task, bool) {
	for _, t := range d.cfg.Store.State().ActiveTasks() {
		if i, _ := unitIndex(t, stepID); i >= 0 {
			return t, true
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
