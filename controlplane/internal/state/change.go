package state

import (
	"iter"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Change is what one write did to the tasks. Every write that touches a
// task reports one, whichever route it came by (a create through any node,
// a cancel, a step report, a lease the leader decided), so that the
// leader's scheduler follows the state itself rather than the callers that
// wrote it. Tasks are the stored values: read them, never change them.
type Change struct {
	// created are the tasks this write added (not replays of a known
	// key), as stored: CreatedQueued reads them.
	created *createdTasks
	// Cancelled is the task this write cancelled, if any.
	Cancelled *Task
	// Steps are the step transitions this write applied, each with its
	// task as it is after the transition. Refused updates are not listed.
	Steps []StepChange
}

// Queued is a task a write created, as it waits for its first step:
// what a scheduler queues it by.
type Queued struct {
	TaskID string
	// StepID and StepKind are the task's first step's.
	StepID   string
	StepKind string
	Kind     encoders.Kind
	Project  string
	Priority string
	// ReadyAt is when the first step became ready: the task's creation
	// (epoch ms).
	ReadyAt int64
}

// Created is how many tasks the write added (not replays of a known
// key).
func (c Change) Created() int { return c.created.count() }

// CreatedQueued yields the tasks the write added (not replays of a known
// key), each as it waits for its first step. A task new from a seed is read from
// its seed, never built: the leader queues every task created through a
// follower, and builds none of them.
func (c Change) CreatedQueued() iter.Seq[Queued] {
	return func(yield func(Queued) bool) {
		for i := range c.created.count() {
			if !yield(c.created.queued(i)) {
				return
			}
		}
	}
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
