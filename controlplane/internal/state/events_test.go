package state

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

type seen struct {
	Type    api.EventType
	Task    string
	Step    string
	Attempt int
	Status  api.TaskStatus // the task's, as the event shows it
}

func eventList(t *testing.T, s *Store, q EventQuery) []seen {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 100
	}
	page, _, err := s.Events(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []seen
	for i, e := range page {
		if i > 0 && e.Seq <= page[i-1].Seq {
			t.Errorf("event %d has seq %d after %d", i, e.Seq, page[i-1].Seq)
		}
		out = append(out, seen{e.Type, e.TaskID(), e.Step, e.Attempt, e.Task().Status})
	}
	return out
}

// TestEvents: a task's life, as the writes that make it are applied,
// leaves its events in order, each with the task as it was; a snapshot
// keeps them and numbering goes on after a restore; the cursor filters
// and pages; trimming forgets the oldest and expires cursors before them.
func TestEvents(t *testing.T) {
	s := New()
	s.SetIndex(1)
	mustCreate(t, s, 1, "t1", "t3")
	task, _ := s.TaskRecord("t1")
	step := func(i int) string { return task.Steps[i].ID }
	s.SetIndex(2)
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: step(0), Attempt: 1, Node: "a", Now: 2000})
	s.SetIndex(3)
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: step(0), Attempt: 1, Now: 2100, Output: []byte(`{}`)})
	s.SetIndex(4)
	// The ingest fails once, retryably, then for good on its last try.
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: step(1), Attempt: 1, Node: "a", Now: 2200})
	s.SetIndex(5)
	mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t1", StepID: step(1), Attempt: 1, Now: 2300, Retryable: true, Error: &api.Error{Kind: "fetch_failed", Message: "x"}})
	s.SetIndex(6)
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: step(1), Attempt: 2, Node: "a", Now: 2400})
	mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t1", StepID: step(1), Attempt: 2, Now: 2500, Error: &api.Error{Kind: "invalid_media", Message: "y"}})
	s.SetIndex(7)
	if _, err := s.CancelTask("t3", 2600); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{api.EventTaskCreated, "t1", "", 0, api.TaskQueued},
		{api.EventTaskCreated, "t3", "", 0, api.TaskQueued},
		{api.EventTaskProcessing, "t1", "", 0, api.TaskProcessing},
		{api.EventStepCompleted, "t1", step(0), 1, api.TaskProcessing},
		{api.EventStepRetrying, "t1", step(1), 1, api.TaskProcessing},
		{api.EventStepFailed, "t1", step(1), 2, api.TaskFailed},
		{api.EventTaskFailed, "t1", "", 0, api.TaskFailed},
		{api.EventTaskCancelled, "t3", "", 0, api.TaskCancelled},
	}
	if diff := cmp.Diff(want, eventList(t, s, EventQuery{})); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	all, _, _ := s.Events(EventQuery{Limit: 100})
	if all[0].Seq != 1<<16 || all[1].Seq != 1<<16|1 || all[2].Seq != 2<<16 || all[5].Seq != 6<<16 || all[6].Seq != 6<<16|1 {
		t.Errorf("sequence numbers %d %d %d %d %d: want the Raft index and the place in its entry", all[0].Seq, all[1].Seq, all[2].Seq, all[5].Seq, all[6].Seq)
	}

	// Filters and pages.
	if got := eventList(t, s, EventQuery{TaskID: "t3"}); len(got) != 2 || got[1].Type != api.EventTaskCancelled {
		t.Errorf("t3's events: %+v", got)
	}
	if got := eventList(t, s, EventQuery{Type: api.EventStepRetrying}); len(got) != 1 || got[0].Attempt != 1 {
		t.Errorf("step.retrying events: %+v", got)
	}
	page, more, _ := s.Events(EventQuery{After: all[2].Seq, Limit: 3})
	if len(page) != 3 || !more || page[0].Seq != all[3].Seq {
		t.Errorf("a page after the third event: %d events, more %v", len(page), more)
	}

	// The events of the write that finished a task share the frozen form
	// the table holds, rather than hold the version whole.
	tasks := s.tasks.Load()
	for _, e := range all {
		if !e.Task().Status.Finished() {
			continue
		}
		raw := tasks.get(e.TaskID())
		if c, ok := e.task.(*coldTask); !ok || c != raw {
			t.Errorf("the %s event of %s holds a %T, not the task as stored", e.Type, e.TaskID(), e.task)
		}
	}

	// A snapshot keeps them, each with its task as it was, and numbering
	// goes on after it.
	r := restored(t, s)
	if diff := cmp.Diff(want, eventList(t, r, EventQuery{})); diff != "" {
		t.Fatalf("restored events (-want +got):\n%s", diff)
	}
	back, _, _ := r.Events(EventQuery{Limit: 100})
	for i, e := range back {
		if diff := cmp.Diff(all[i].Task(), e.Task(), exported); diff != "" {
			t.Errorf("restored %s event of %s (-before +after):\n%s", e.Type, e.TaskID(), diff)
		}
		if _, cold := e.task.(*coldTask); cold != e.Task().Status.Finished() {
			t.Errorf("restored %s event of %s: frozen %v with the task %s", e.Type, e.TaskID(), cold, e.Task().Status)
		}
	}
	wake := r.EventsChanged()
	r.SetIndex(0) // no index (a store without a log): numbered after the last
	mustCreate(t, r, 8, "t5")
	select {
	case <-wake:
	default:
		t.Error("a commit with events did not wake the feed")
	}
	after, _, _ := r.Events(EventQuery{After: all[7].Seq, Limit: 10})
	if len(after) != 1 || after[0].Seq != all[7].Seq+1 || after[0].TaskID() != "t5" {
		t.Errorf("the event after a restore: %+v", after)
	}

	// Trimming forgets the events before a time, and a cursor before the
	// last one forgotten has expired.
	if n := s.TrimEvents(2150, 0); n != 4 {
		t.Errorf("trimmed %d events, want the 4 before 2150 ms", n)
	}
	if _, _, err := s.Events(EventQuery{After: all[1].Seq, Limit: 10}); !errors.Is(err, ErrCursorExpired) {
		t.Errorf("a trimmed cursor: %v, want ErrCursorExpired", err)
	}
	if page, _, err := s.Events(EventQuery{After: all[3].Seq, Limit: 10}); err != nil || len(page) != 4 {
		t.Errorf("the last event trimmed as cursor: %d events, %v", len(page), err)
	}
	if got := eventList(t, s, EventQuery{}); len(got) != 4 || got[0].Type != api.EventStepRetrying {
		t.Errorf("kept after trimming: %+v", got)
	}
}

// TestEventsReadOnceCommitted: an event goes into the log as its write
// adds it, but pages and the latest mark show it only once that write has
// committed (a lookup by sequence number, which deliveries make once
// their write committed, finds it at once); pages read while the writer
// creates and trims see whole writes, in order, never a trimmed cursor
// served.
func TestEventsReadOnceCommitted(t *testing.T) {
	s := New()
	s.SetIndex(1)
	mustCreate(t, s, 1, "t1")
	first := s.LatestEvent()

	s.SetIndex(2)
	txn := s.db.Load().Txn(true)
	e := s.addEvent(txn, api.EventTaskCancelled, s.tasks.Load().get("t1"), 2000, "", 0)
	if got := eventList(t, s, EventQuery{}); len(got) != 1 {
		t.Errorf("before the commit: %d events, want 1", len(got))
	}
	if got := s.LatestEvent(); got != first {
		t.Errorf("the latest event before the commit: %d, want %d", got, first)
	}
	if got, err := s.EventBySeq(e.Seq); err != nil || got != e {
		t.Errorf("the event by its number: %v, %v", got, err)
	}
	txn.Commit()
	s.eventsCommitted()
	if got := eventList(t, s, EventQuery{}); len(got) != 2 {
		t.Errorf("after the commit: %d events, want 2", len(got))
	}
	if got := s.LatestEvent(); got != e.Seq {
		t.Errorf("the latest event after the commit: %d, want %d", got, e.Seq)
	}

	// Readers alongside the writer.
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			page, _, err := s.Events(EventQuery{Limit: 1000})
			if err != nil {
				errs <- err
				return
			}
			for i, e := range page {
				if i > 0 && e.Seq <= page[i-1].Seq {
					errs <- errors.New("a page out of order")
					return
				}
				_ = e.Task().Status // the task as its write left it
			}
			_ = s.LatestEvent()
		}
	}()
	for i := range 200 {
		s.SetIndex(uint64(10 + i))
		mustCreate(t, s, uint64(10+i), fmt.Sprintf("c%03d", i))
		if i%20 == 19 {
			s.TrimEvents(0, 50)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if n := s.EventCount(); n != 50 {
		t.Errorf("%d events kept, want the 50 newest", n)
	}
	page, _, _ := s.Events(EventQuery{Limit: 1000})
	if len(page) != 50 || page[49].TaskID() != "c199" {
		t.Errorf("kept: %d events, the last about %q", len(page), page[len(page)-1].TaskID())
	}
}
