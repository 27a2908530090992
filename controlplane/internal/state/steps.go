package state

import (
	"encoding/json"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// MaxFailures is how many times a step may fail before its task fails.
const MaxFailures = 3

// StepOp names a step transition.
type StepOp string

// Step transitions, as the leader proposes them.
const (
	// OpAssign leases the task's current step to a node: processing, with
	// the next attempt number as fencing token.
	OpAssign StepOp = "assign"
	// OpComplete records a step's output; the next step becomes queued,
	// or the task completes.
	OpComplete StepOp = "complete"
	// OpFail records a failure: queued again (with a backoff) while
	// retryable failures remain, else the task fails.
	OpFail StepOp = "fail"
	// OpRelease hands a step back without counting a failure (a draining
	// agent, an assignment never picked up).
	OpRelease StepOp = "release"
	// OpSplit cuts a waiting encode step into parts (StepUpdate.Parts).
	// The four ops above apply to a part too, by its id: a part is
	// leased, completed, failed and released like a step, with its own
	// attempt and failures. When every part has completed, the step is
	// queued again: its own run stitches them.
	OpSplit StepOp = "split"
	// OpBackup starts a second copy of a running part on another node (a
	// backup of a straggler), with the next attempt number, while the
	// first keeps running. The first copy to complete wins; a copy that
	// fails or is released while the other runs just ends, counting no
	// failure.
	OpBackup StepOp = "backup"
)

// StepUpdate is one step transition, stamped by the leader.
type StepUpdate struct {
	Op     StepOp `json:"op"`
	TaskID string `json:"task_id"`
	StepID string `json:"step_id"`
	// Attempt is the new attempt number (assign) or the reporter's (the
	// others); a report from an older attempt is rejected.
	Attempt int    `json:"attempt"`
	Node    string `json:"node,omitempty"`
	Now     int64  `json:"now"`
	// Complete: the step's output and, for the encode step, the options it
	// resolved (the plan and the encoder used).
	Output  json.RawMessage `json:"output,omitempty"`
	Options json.RawMessage `json:"options,omitempty"`
	// TaskOutput is the task's output URL, set by the last step.
	TaskOutput string `json:"task_output,omitempty"`
	// Fail: what went wrong, whether another try may help, and how long
	// to wait before it (ms).
	Error     *api.Error `json:"error,omitempty"`
	Retryable bool       `json:"retryable,omitempty"`
	Backoff   int64      `json:"backoff,omitempty"`
	// Avoid, on a release, asks that the step's next attempt run on
	// another node than the one releasing it where one fits (the node
	// lost the assignment or its report on the way: its link is suspect).
	Avoid bool `json:"avoid,omitempty"`
	// Split: the step's parts, with their ids.
	Parts []api.Part `json:"parts,omitempty"`
}

// StepResult is what became of one StepUpdate.
type StepResult struct {
	// Task is the task after the update (nil when not found).
	Task *Task `json:"-"`
	// Err is why the update was refused: "not_found", "stale" (another
	// attempt, or the step is no longer running), "finished" (the task
	// ended).
	Err string `json:"err,omitempty"`
}

// ApplyStepUpdates applies a batch of step transitions in order. A task
// touched by several updates of the batch (a step's outcome and its
// successor's lease) is stored once, as the last of them left it; each
// result and change still shows the task as its own update left it.
func (s *Store) ApplyStepUpdates(ups []StepUpdate) []StepResult {
	txn := s.write()
	defer txn.Abort()
	out := make([]StepResult, len(ups))
	var applied []StepChange
	var added []*Event // the events of this batch
	touched := map[string]*Task{}
	var order []string
	for i, u := range ups {
		cur := touched[u.TaskID]
		if cur == nil {
			cur = getTask(txn.tasks(), u.TaskID)
		}
		if cur == nil {
			out[i].Err = "not_found"
			continue
		}
		t := cur.clone()
		if errStr := s.applyStep(t, u); errStr != "" {
			out[i] = StepResult{Task: cur, Err: errStr}
			continue
		}
		if touched[u.TaskID] == nil {
			order = append(order, u.TaskID)
		}
		touched[u.TaskID] = t
		out[i].Task = t
		applied = append(applied, StepChange{Update: u, Task: t})
		added = s.stepEvents(txn.Txn, u, cur, t, added)
	}
	var frozen map[*Task]*coldTask
	for _, id := range order {
		t := touched[id]
		st := s.putTask(txn, t)
		if c, ok := st.(*coldTask); ok {
			if frozen == nil {
				frozen = map[*Task]*coldTask{}
			}
			frozen[t] = c
		}
	}
	// The events of a version that finished its task share its frozen
	// form with the table, rather than hold the version whole.
	for _, e := range added {
		if t, ok := e.task.(*Task); ok && frozen[t] != nil {
			e.task = frozen[t]
		}
	}
	txn.Commit()
	s.eventsCommitted()
	s.notify(Change{Steps: applied})
	return out
}

// stepIndex finds a step by id.
func stepIndex(t *Task, id string) int {
	for i := range t.Steps {
		if t.Steps[i].ID == id {
			return i
		}
	}
	return -1
}

// Shared progress values of steps that have not begun or have ended:
// stored values are never changed in place, so every step may point at
// them.
var (
	progressNone = 0.0
	progressDone = 1.0
)

// node returns the one copy of a node's name that every step run there
// points at (a million steps run by a thousand nodes keep a thousand
// names, not a million).
func (s *Store) node(name string) *string {
	if p, ok := s.names.Load(name); ok {
		return p.(*string)
	}
	p, _ := s.names.LoadOrStore(name, &name)
	return p.(*string)
}

func (s *Store) applyStep(t *Task, u StepUpdate) string {
	i := stepIndex(t, u.StepID)
	if i < 0 {
		if i, k := PartIndex(t, u.StepID); i >= 0 {
			if t.Status.Finished() {
				return "finished"
			}
			return s.applyPart(t, i, k, u)
		}
		return "not_found"
	}
	if t.Status.Finished() {
		return "finished"
	}
	if u.Op == OpSplit {
		return splitStep(t, i, u)
	}
	st, run := &t.Steps[i], &t.Runs[i]
	now := u.Now
	switch u.Op {
	case OpAssign:
		if i != t.Current() || (st.Status != api.StepWaiting && st.Status != api.StepQueued) || u.Attempt != st.Attempt+1 {
			return "stale"
		}
		if st.Parts != nil && !api.PartsDone(st.Parts) {
			return "stale" // its parts run first; the step's own run stitches them
		}
		st.Status, st.Attempt, st.Node = api.StepProcessing, u.Attempt, s.node(u.Node)
		run.Avoid = ""
		st.StartedAt, st.FinishedAt, st.UpdatedAt = &now, nil, now
		st.Progress = &progressNone
		if t.StartedAt == nil {
			t.StartedAt = &now
		}
		t.Status = api.TaskProcessing
	case OpComplete:
		if st.Status != api.StepProcessing || u.Attempt != st.Attempt {
			return "stale"
		}
		st.Status, st.Progress, st.Error = api.StepCompleted, &progressDone, nil
		st.FinishedAt, st.UpdatedAt = &now, now
		if len(u.Output) > 0 {
			st.Output = u.Output
		}
		if len(u.Options) > 0 {
			st.Options = u.Options
		}
		if st.Node != nil {
			run.Holder = *st.Node
		}
		if i+1 < len(t.Steps) {
			next := &t.Steps[i+1]
			next.Status, next.UpdatedAt = api.StepQueued, now
			t.Runs[i+1].ReadyAt = now
			partsReady(t, i+1, now)
		} else {
			t.Status, t.FinishedAt = api.TaskCompleted, &now
			if u.TaskOutput != "" {
				out := u.TaskOutput
				t.Output = &out
			}
		}
	case OpFail:
		if st.Status != api.StepProcessing || u.Attempt != st.Attempt {
			return "stale"
		}
		run.Failures++
		st.Error, st.UpdatedAt = u.Error, now
		if u.Retryable && run.Failures < MaxFailures {
			st.Status, st.FinishedAt = api.StepQueued, &now
			run.NotBefore, run.ReadyAt = now+u.Backoff, now+u.Backoff
		} else {
			st.Status, st.FinishedAt = api.StepFailed, &now
			failTask(t, i, u.Error, now)
		}
	case OpRelease:
		if st.Status != api.StepProcessing || u.Attempt != st.Attempt {
			return "stale"
		}
		st.Status, st.UpdatedAt, st.Progress = api.StepQueued, now, nil
		run.ReadyAt = now
		if u.Avoid && st.Node != nil {
			run.Avoid = *st.Node
		}
	default:
		return "unknown_op"
	}
	t.UpdatedAt = now
	return ""
}

// failTask ends the task with step i's error; later steps, and the
// step's parts still to run, are cancelled.
func failTask(t *Task, i int, e *api.Error, now int64) {
	t.Status, t.Error, t.FinishedAt = api.TaskFailed, e, &now
	cancelParts(&t.Steps[i], now)
	for j := i + 1; j < len(t.Steps); j++ {
		t.Steps[j].Status, t.Steps[j].UpdatedAt = api.StepCancelled, now
	}
}

// PartIndex finds a part of t by id: the step's index and the part's; -1,
// -1 when t has none.
func PartIndex(t *Task, id string) (int, int) {
	for i := range t.Steps {
		for k := range t.Steps[i].Parts {
			if t.Steps[i].Parts[k].ID == id {
				return i, k
			}
		}
	}
	return -1, -1
}

// splitStep cuts waiting step i into u.Parts: only an encode step that
// has not run yet, once.
func splitStep(t *Task, i int, u StepUpdate) string {
	st := &t.Steps[i]
	if !encoders.Kind(st.Kind).Valid() || st.Parts != nil || st.Attempt != 0 ||
		(st.Status != api.StepWaiting && st.Status != api.StepQueued) || len(u.Parts) < 2 {
		return "stale"
	}
	parts := make([]api.Part, len(u.Parts))
	for k, p := range u.Parts {
		p.Object, p.Status, p.Attempt, p.Node, p.Progress = "part", api.StepWaiting, 0, nil, nil
		p.StartedAt, p.FinishedAt, p.Error = nil, nil, nil
		parts[k] = p
	}
	st.Parts, st.UpdatedAt = parts, u.Now
	t.Runs[i].Parts = make([]StepRun, len(parts))
	if st.Status == api.StepQueued {
		partsReady(t, i, u.Now)
	}
	t.UpdatedAt = u.Now
	return ""
}

// partsReady marks the parts of step i, which has just become queued,
// ready since now (for queue order and the wait metric).
func partsReady(t *Task, i int, now int64) {
	if len(t.Runs[i].Parts) == 0 {
		return
	}
	runs := append([]StepRun(nil), t.Runs[i].Parts...)
	for k := range runs {
		runs[k].ReadyAt = now
	}
	t.Runs[i].Parts = runs
}

// applyPart applies u to part k of step i. The step's parts and their
// runs are copied first: stored values are never changed in place.
func (s *Store) applyPart(t *Task, i, k int, u StepUpdate) string {
	st := &t.Steps[i]
	if i != t.Current() || st.Status == api.StepCompleted {
		return "stale"
	}
	st.Parts = append([]api.Part(nil), st.Parts...)
	runs := append([]StepRun(nil), t.Runs[i].Parts...)
	if len(runs) < len(st.Parts) {
		runs = append(runs, make([]StepRun, len(st.Parts)-len(runs))...)
	}
	t.Runs[i].Parts = runs
	p, run := &st.Parts[k], &runs[k]
	now := u.Now
	switch u.Op {
	case OpAssign:
		if (p.Status != api.StepWaiting && p.Status != api.StepQueued) || u.Attempt != max(p.Attempt, run.Issued)+1 {
			return "stale"
		}
		p.Status, p.Attempt, p.Node = api.StepProcessing, u.Attempt, s.node(u.Node)
		p.StartedAt, p.FinishedAt, p.Progress = &now, nil, &progressNone
		run.Avoid = ""
		if st.StartedAt == nil {
			st.StartedAt = &now
		}
		st.Status, st.Progress = api.StepProcessing, &progressNone
		if t.StartedAt == nil {
			t.StartedAt = &now
		}
		t.Status = api.TaskProcessing
	case OpBackup:
		if p.Status != api.StepProcessing || p.Backup != nil || (p.Node != nil && *p.Node == u.Node) ||
			u.Attempt != max(p.Attempt, run.Issued)+1 {
			return "stale"
		}
		p.Backup = &api.PartCopy{Node: u.Node, Attempt: u.Attempt, StartedAt: now}
		run.Issued = u.Attempt
	case OpComplete:
		if p.Status != api.StepProcessing || !p.RunsAttempt(u.Attempt) {
			return "stale"
		}
		if p.Attempt != u.Attempt {
			s.promoteBackup(p) // the backup won
		}
		p.Backup = nil
		p.Status, p.Progress, p.Error, p.FinishedAt = api.StepCompleted, &progressDone, nil, &now
		if p.Node != nil {
			run.Holder = *p.Node
		}
		if api.PartsDone(st.Parts) {
			// Every part is in: the step's own run stitches them.
			st.Status = api.StepQueued
			t.Runs[i].ReadyAt = now
		}
	case OpFail:
		if p.Status != api.StepProcessing || !p.RunsAttempt(u.Attempt) {
			return "stale"
		}
		if p.Backup != nil {
			s.endCopy(p, u.Attempt) // the other copy runs on
			break
		}
		run.Failures++
		p.Error = u.Error
		if u.Retryable && run.Failures < MaxFailures {
			p.Status, p.FinishedAt = api.StepQueued, &now
			run.NotBefore, run.ReadyAt = now+u.Backoff, now+u.Backoff
		} else {
			p.Status, p.FinishedAt = api.StepFailed, &now
			st.Status, st.FinishedAt, st.Error = api.StepFailed, &now, u.Error
			failTask(t, i, u.Error, now)
		}
	case OpRelease:
		if p.Status != api.StepProcessing || !p.RunsAttempt(u.Attempt) {
			return "stale"
		}
		if p.Backup != nil {
			s.endCopy(p, u.Attempt)
			break
		}
		p.Status, p.Progress = api.StepQueued, nil
		run.ReadyAt = now
		if u.Avoid && p.Node != nil {
			run.Avoid = *p.Node
		}
	default:
		return "unknown_op"
	}
	st.UpdatedAt, t.UpdatedAt = now, now
	return ""
}

// endCopy ends one of the two copies of a part, by attempt: the part goes
// on as the other.
func (s *Store) endCopy(p *api.Part, attempt int) {
	if attempt == p.Attempt {
		s.promoteBackup(p)
	}
	p.Backup = nil
}

// promoteBackup makes a part's backup copy the part's run: its node,
// attempt and start.
func (s *Store) promoteBackup(p *api.Part) {
	b := *p.Backup
	p.Node, p.Attempt, p.StartedAt = s.node(b.Node), b.Attempt, &b.StartedAt
}

// cancelParts cancels a step's parts that have not ended.
func cancelParts(st *api.Step, now int64) {
	if st.Parts == nil {
		return
	}
	st.Parts = append([]api.Part(nil), st.Parts...)
	for k := range st.Parts {
		p := &st.Parts[k]
		switch p.Status {
		case api.StepCompleted, api.StepFailed, api.StepCancelled:
			continue
		}
		p.Status, p.Backup = api.StepCancelled, nil
		if p.StartedAt != nil {
			p.FinishedAt = &now
		}
	}
}

// ActiveTasks returns every task that has not ended.
// The ids are read first, then the tasks: a task created in between is
// left out (whoever follows the changes hears of it), one that ended in
// between too.
func (s *Store) ActiveTasks() []*Task {
	ids := s.active.Load().clone()
	tasks := s.tasks.Load()
	var out []*Task
	ids.Ascend(func(id string) bool {
		switch t := tasks.get(id).(type) {
		case *Task:
			if !t.Status.Finished() {
				out = append(out, t.clone())
			}
		case *seededTask:
			out = append(out, t.task())
		}
		return true
	})
	return out
}

// TaskRecord returns the stored task with its scheduling fields.
func (s *Store) TaskRecord(id string) (*Task, bool) {
	t := getTask(s.tasks.Load(), id)
	if t == nil {
		return nil, false
	}
	return t.clone(), true
}
