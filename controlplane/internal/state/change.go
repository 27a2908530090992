package state

// Change is what one write did to the tasks. Every write that touches a
// task reports one, whichever route it came by (a create through any node,
// a cancel, a step report, a lease the leader decided), so that the
// leader's scheduler follows the state itself rather than the callers that
// wrote it. Tasks are the stored values: read them, never change them.
type Change struct {
	// created are the tasks this write added (not replays of a known
	// key), as stored: CreatedTasks builds them.
	created *createdTasks
	// Cancelled is the task this write cancelled, if any.
	Cancelled *Task
	// Steps are the step transitions this write applied, each with its
	// task as it is after the transition. Refused updates are not listed.
	Steps []StepChange
}

// CreatedTasks returns the tasks the write added (not replays of a known
// key). A task new from a seed is built as it is read: a node that does
// not schedule never asks.
func (c Change) CreatedTasks() []*Task {
	out := make([]*Task, c.created.count())
	for i := range out {
		out[i] = c.created.task(i)
	}
	return out
}

// StepChange is one applied step transition.
type StepChange struct {
	Update StepUpdate
	Task   *Task
}

// Observe registers fn to be told of every change, once it is committed
// to the state, on the goroutine that wrote it (the FSM's, in a cluster).
// fn must be quick and must not write to the state. Register before any
// write; one observer at a time.
func (s *Store) Observe(fn func(Change)) { s.observer.Store(&fn) }

// notify tells the observer of a change, if there is one and it is not
// empty.
func (s *Store) notify(c Change) {
	if c.created.count() == 0 && c.Cancelled == nil && len(c.Steps) == 0 {
		return
	}
	if fn := s.observer.Load(); fn != nil {
		(*fn)(c)
	}
}
