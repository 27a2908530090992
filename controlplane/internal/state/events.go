package state

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// Events are derived from the writes that cause them, in the same
// transaction, by every node as it applies the log: every node holds the
// same events in the same order, and an event's sequence number comes from
// the Raft index of the entry that caused it (index<<16 | its place among
// that entry's events), so the order of ids is the order of the log.

// ErrCursorExpired is the error of a cursor that names an event older than the retention,
// already trimmed.
var ErrCursorExpired = errors.New("cursor expired")

// metaEventsTrimmed is the meta key under which the sequence number of the
// last event trimmed is kept: a cursor before it has expired.
const metaEventsTrimmed = "events_trimmed_seq"

// Event is one thing that happened to a task, with the task as it was then.
type Event struct {
	Seq       uint64        `json:"seq"`
	Type      api.EventType `json:"type"`
	CreatedAt int64         `json:"created_at"`
	// Step and Attempt name the step of a step.* event.
	Step    string
	Attempt int
	// task is the task as the write left it: the very version that write
	// stored, shared with the tasks table until the task's next write (a
	// *Task, never changed once stored, or the *coldTask of a task the
	// write finished); nil for a webhook.* event. Read it with TaskID and
	// Task.
	task any
	// Endpoint is the endpoint of a webhook.* event, without its secrets
	// (nil for any other).
	Endpoint *Endpoint
}

// eventRecord is an event's line in a snapshot.
type eventRecord struct {
	Seq       uint64          `json:"seq"`
	Type      api.EventType   `json:"type"`
	CreatedAt int64           `json:"created_at"`
	Step      string          `json:"step,omitempty"`
	Attempt   int             `json:"attempt,omitempty"`
	Task      json.RawMessage `json:"task,omitempty"`
	Endpoint  *Endpoint       `json:"endpoint,omitempty"`
}

// TaskID is the id of the task the event is about ("" for a webhook.*
// event).
func (e *Event) TaskID() string {
	if e.task == nil {
		return ""
	}
	id, _, _, _ := taskFields(e.task)
	return id
}

// Project is the project of the event's task, or of its endpoint for a
// webhook.* event ("": the operator's).
func (e *Event) Project() string {
	switch {
	case e.task != nil:
		return taskProject(e.task)
	case e.Endpoint != nil:
		return e.Endpoint.Project
	}
	return ""
}

// Task is the task as the event's write left it (empty for a webhook.*
// event). It shares its steps with the stored version: copy them before
// changing them.
func (e *Event) Task() api.Task {
	if e.task == nil {
		return api.Task{}
	}
	return asTask(e.task).Task
}

// MarshalJSON writes the event as a snapshot holds it: the task whole, as
// its JSON (a frozen one is not thawed to write it).
func (e *Event) MarshalJSON() ([]byte, error) {
	r := eventRecord{Seq: e.Seq, Type: e.Type, CreatedAt: e.CreatedAt, Step: e.Step, Attempt: e.Attempt, Endpoint: e.Endpoint}
	var err error
	switch t := e.task.(type) {
	case *Task:
		r.Task, err = json.Marshal(&t.Task)
	case *coldTask:
		r.Task, err = t.json()
	case *seededTask:
		r.Task, err = json.Marshal(&t.task().Task)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// UnmarshalJSON reads an event from a snapshot; the task of one that
// finished it is frozen again, as it was held.
func (e *Event) UnmarshalJSON(data []byte) error {
	var r eventRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	*e = Event{Seq: r.Seq, Type: r.Type, CreatedAt: r.CreatedAt, Step: r.Step, Attempt: r.Attempt, Endpoint: r.Endpoint}
	if r.Endpoint != nil || len(r.Task) == 0 || string(r.Task) == "null" {
		return nil // a webhook.* event: snapshots before shared versions wrote an empty task
	}
	t := &Task{}
	if err := json.Unmarshal(r.Task, &t.Task); err != nil {
		return err
	}
	if t.Status.Finished() {
		e.task = freezeJSON(t, r.Task)
		return nil
	}
	t.decoded()
	e.task = t
	return nil
}

// SetIndex tells the store the Raft index of the entry it applies next:
// the events that entry causes take their sequence numbers from it. The
// FSM calls it before each entry.
func (s *Store) SetIndex(index uint64) { s.index = index }

// addEvent inserts an event of type typ about task version t (as stored:
// *Task or *coldTask) at time now, numbered after every earlier one.
func (s *Store) addEvent(txn *memdb.Txn, typ api.EventType, t any, now int64, step string, attempt int) *Event {
	e := &Event{Type: typ, CreatedAt: now, Step: step, Attempt: attempt, task: t}
	s.insertEvent(txn, e)
	return e
}

// endpointEvent inserts an event of type typ about endpoint ep (its
// secrets left out) at time now.
func (s *Store) endpointEvent(txn *memdb.Txn, typ api.EventType, ep Endpoint, now int64) {
	ep.Secrets = nil
	s.insertEvent(txn, &Event{Type: typ, CreatedAt: now, Endpoint: &ep})
}

// insertEvent numbers e after every earlier event, inserts it and queues
// it for the endpoints that want it.
func (s *Store) insertEvent(txn *memdb.Txn, e *Event) {
	seq := s.index << 16
	if seq <= s.lastEvent {
		seq = s.lastEvent + 1
	}
	s.lastEvent = seq
	e.Seq = seq
	s.events.Load().put(e)
	s.eventCount.Add(1)
	s.outboxEvent(txn, e)
	s.eventsAdded = true
}

// eventsCommitted wakes whoever waits for new events, once the write that
// added them has committed.
func (s *Store) eventsCommitted() {
	if !s.eventsAdded {
		return
	}
	s.eventsAdded = false
	s.events.Load().commit(s.lastEvent)
	ch := make(chan struct{})
	if old := s.eventWake.Swap(&ch); old != nil {
		close(*old)
	}
}

// EventsChanged returns a channel closed when the next events are
// committed: read the events after the last one seen, then wait on it.
// Take the channel before reading, so no event falls between.
func (s *Store) EventsChanged() <-chan struct{} {
	for {
		if ch := s.eventWake.Load(); ch != nil {
			return *ch
		}
		ch := make(chan struct{})
		s.eventWake.CompareAndSwap(nil, &ch)
	}
}

// stepEvents adds the events of one applied step update: before is the
// task as it was, after as the update left it. It appends them to added
// and returns it.
func (s *Store) stepEvents(txn *memdb.Txn, u StepUpdate, before, after *Task, added []*Event) []*Event {
	now := u.Now
	if before.Status == api.TaskQueued && after.Status == api.TaskProcessing {
		added = append(added, s.addEvent(txn, api.EventTaskProcessing, after, now, "", 0))
	}
	if i := stepIndex(after, u.StepID); i >= 0 { // a step, not a part
		st, was := after.Steps[i], before.Steps[i]
		switch {
		case u.Op == OpComplete && st.Status == api.StepCompleted && was.Status != api.StepCompleted:
			added = append(added, s.addEvent(txn, api.EventStepCompleted, after, now, st.ID, u.Attempt))
		case u.Op == OpFail && st.Status == api.StepFailed:
			added = append(added, s.addEvent(txn, api.EventStepFailed, after, now, st.ID, u.Attempt))
		case u.Op == OpFail && st.Status == api.StepQueued:
			added = append(added, s.addEvent(txn, api.EventStepRetrying, after, now, st.ID, u.Attempt))
		}
	}
	if before.Status != after.Status {
		switch after.Status {
		case api.TaskCompleted:
			added = append(added, s.addEvent(txn, api.EventTaskCompleted, after, now, "", 0))
		case api.TaskFailed:
			added = append(added, s.addEvent(txn, api.EventTaskFailed, after, now, "", 0))
		}
	}
	return added
}

// EventQuery selects a page of events, oldest first.
type EventQuery struct {
	// After is the sequence number of the last event seen (0: from the
	// oldest kept).
	After uint64
	Limit int
	// Type, TaskID and Project filter when set.
	Type    api.EventType
	TaskID  string
	Project string
}

// Events returns the events after q.After that match q, oldest first, at
// most q.Limit, and whether more follow. A cursor before the last event
// trimmed is ErrCursorExpired: the events after it are gone, and a silent
// jump would lose them.
func (s *Store) Events(q EventQuery) ([]*Event, bool, error) {
	v := s.events.Load().view()
	if q.After > 0 && q.After < v.trimmed {
		return nil, false, ErrCursorExpired
	}
	var page []*Event
	more := false
	v.from(q.After+1, func(e *Event) bool {
		if (q.Type != "" && e.Type != q.Type) || (q.TaskID != "" && e.TaskID() != q.TaskID) || (q.Project != "" && e.Project() != q.Project) {
			return true
		}
		if len(page) == q.Limit {
			more = true
			return false
		}
		page = append(page, e)
		return true
	})
	return page, more, nil
}

// LatestEvent is the sequence number of the last event kept, 0 when none
// is.
func (s *Store) LatestEvent() uint64 { return s.events.Load().latest() }

// eventsTrimmed is the sequence number of the last event trimmed, as the
// meta table keeps it for snapshots, 0 when none was.
func eventsTrimmed(txn *memdb.Txn) uint64 {
	raw, err := txn.First(tableMeta, "id", metaEventsTrimmed)
	if err != nil || raw == nil {
		return 0
	}
	n, _ := strconv.ParseUint(raw.(*Meta).Value, 10, 64)
	return n
}

// maxTrim bounds the events one entry trims, so that trimming a long
// backlog never stalls the writes behind it; the rest go with the next.
const maxTrim = 20000

// EventCount is how many events are kept.
func (s *Store) EventCount() int { return int(s.eventCount.Load()) }

// TrimEvents forgets the oldest events: those created before before (epoch
// ms, decided by the leader from its retention; 0: none by age) and those
// beyond the newest keep (0: no bound), at most maxTrim, and returns how
// many it forgot. A pending delivery of an event trimmed keeps the event
// for itself, so that nothing owed to an endpoint is lost.
func (s *Store) TrimEvents(before int64, keep int) int {
	count := s.EventCount()
	var old []*Event
	log := s.events.Load()
	log.oldest(func(e *Event) bool {
		if len(old) == maxTrim || !(e.CreatedAt < before || (keep > 0 && count-len(old) > keep)) {
			return false
		}
		old = append(old, e)
		return true
	})
	if len(old) == 0 {
		return 0
	}
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	trimmed := make(map[uint64]*Event, len(old))
	for _, e := range old {
		trimmed[e.Seq] = e
	}
	last := old[len(old)-1].Seq
	// Deliveries done before the cutoff, or of the events trimmed, go
	// with the events; pending ones keep their event.
	settleDeliveries(txn, trimmed, func(d *Delivery) bool {
		return d.CreatedAt < before || (d.EventSeq != 0 && d.EventSeq <= last)
	})
	mustInsert(txn, tableMeta, &Meta{Key: metaEventsTrimmed, Value: strconv.FormatUint(last, 10)})
	txn.Commit()
	log.remove(trimmed, last)
	s.eventCount.Add(-int64(len(old)))
	return len(old)
}

// settleDeliveries deals with the deliveries of events being dropped: a
// delivery still owed keeps its event for itself, so that nothing owed to
// an endpoint is lost; a delivery made (or given up) goes when done says.
func settleDeliveries(txn *memdb.Txn, dropped map[uint64]*Event, done func(*Delivery) bool) {
	it, err := txn.Get(tableDeliveries, "id")
	if err != nil {
		return
	}
	var gone, owed []*Delivery
	for raw := it.Next(); raw != nil; raw = it.Next() {
		d := raw.(*Delivery)
		switch {
		case d.Status == DeliveryPending:
			if e := dropped[d.EventSeq]; e != nil && d.Event == nil {
				owed = append(owed, d)
			}
		case done(d):
			gone = append(gone, d)
		}
	}
	for _, d := range gone {
		_ = txn.Delete(tableDeliveries, d)
	}
	for _, cur := range owed {
		d := *cur
		d.Event = dropped[d.EventSeq]
		mustInsert(txn, tableDeliveries, &d)
	}
}
