package state

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// TestRetire: the finished tasks that finished before the cutoff are the
// candidates, oldest first; retiring drops them with their request keys
// and events, and leaves the rest (and a delivery still owed its event).
func TestRetire(t *testing.T) {
	s := New()
	s.SetIndex(1)
	mustCreate(t, s, 1, "t1", "t2", "t3", "t4")
	// t1 and t3 end at 2,000 and 3,000; t2 is still queued; t4 ends late.
	for i, id := range []string{"t1", "t3", "t4"} {
		s.SetIndex(uint64(2 + i))
		if _, err := s.CancelTask(id, int64([]int{2000, 3000, 9000}[i])); err != nil {
			t.Fatal(err)
		}
	}
	// An endpoint that wants t1's cancellation: the delivery is owed.
	s.SetIndex(10)
	ep := Endpoint{ID: "we_1", URL: "https://example.com/hook", Events: []string{"task.cancelled"}, CreatedAt: 100}
	if res := s.ApplyWebhookOps([]WebhookOp{{Op: WebhookCreate, Endpoint: &ep, Now: 100}}); res[0].Err != "" {
		t.Fatal(res[0].Err)
	}
	s.SetIndex(11)
	if _, err := s.CancelTask("t2", 4000); err != nil {
		t.Fatal(err)
	}

	due := s.Retirable(6000, 5000, 10)
	var got []string
	for _, r := range due {
		got = append(got, r.ID)
		var task api.Task
		if err := json.Unmarshal(r.JSON, &task); err != nil || task.ID != r.ID || task.Status != api.TaskCancelled {
			t.Errorf("retiree %s: JSON %s (%v)", r.ID, r.JSON, err)
		}
	}
	if diff := cmp.Diff([]string{"t1", "t2", "t3"}, got); diff != "" {
		t.Fatalf("retirable before 5,000 (-want +got):\n%s", diff)
	}
	if n := s.RetirableCount(5000, 10); n != 3 {
		t.Errorf("count %d, want 3", n)
	}
	if got := s.Retirable(6000, 5000, 2); len(got) != 2 || got[0].ID != "t1" || got[1].ID != "t2" {
		t.Errorf("a batch of 2: %v", got)
	}
	// Each comes with its request key and its two events (created and
	// cancelled).
	for _, r := range due {
		if len(r.Requests) != 1 || r.Requests[0].Key != "k-"+r.ID || len(r.Events) != 2 {
			t.Errorf("retiree %s: request keys %v, events %v", r.ID, r.Requests, r.Events)
		}
	}
	// A day later, their keys have expired: none is named.
	for _, r := range s.Retirable(6000+IdempotencyTTL, 5000, 10) {
		if len(r.Requests) != 0 || len(r.Events) != 2 {
			t.Errorf("retiree %s a day later: request keys %v, events %v", r.ID, r.Requests, r.Events)
		}
	}
	pendingBefore := s.PendingDeliveries()
	// An id no longer there (retired by an earlier entry) is skipped.
	if n := s.RetireTasks(retirement(due, "t1", "t3", "nope")); n != 2 {
		t.Errorf("retired %d, want 2", n)
	}
	for _, id := range []string{"t1", "t3"} {
		if _, err := s.Task(id); err == nil {
			t.Errorf("%s still there", id)
		}
		if evs, _, _ := s.Events(EventQuery{Limit: 100, TaskID: id}); len(evs) != 0 {
			t.Errorf("%s keeps %d events", id, len(evs))
		}
	}
	if _, err := s.Task("t2"); err != nil {
		t.Errorf("t2 retired with the others: %v", err)
	}
	if evs, _, _ := s.Events(EventQuery{Limit: 100, TaskID: "t2"}); len(evs) == 0 {
		t.Error("t2's events went too")
	}
	// A key of a retired task is forgotten: the same request makes a new
	// task. t2's key still replays.
	if r := s.CreateTasks(20, 6000, []CreateRequest{{Task: newTask("t9", "video", 6000), Scope: "req", Key: "k-t1", BodyHash: "h"}})[0]; r.Replayed {
		t.Error("the key of a retired task still replays")
	}
	if r := s.CreateTasks(21, 6000, []CreateRequest{{Task: newTask("t8", "video", 6000), Scope: "req", Key: "k-t2", BodyHash: "h"}})[0]; !r.Replayed {
		t.Error("t2's key was dropped")
	}
	// The owed delivery of t2's cancellation is still owed; t1's was
	// never made (the endpoint came after), so nothing else changed.
	if s.PendingDeliveries() != pendingBefore {
		t.Errorf("pending deliveries %d, want %d", s.PendingDeliveries(), pendingBefore)
	}
	// Retiring t2 now, as an entry written before events were named does
	// (a walk over every event finds them): its owed delivery keeps its
	// event.
	old := retirement(due, "t2")
	old.Events, old.Listed = nil, false
	s.RetireTasks(old)
	if evs, _, _ := s.Events(EventQuery{Limit: 100, TaskID: "t2"}); len(evs) != 0 {
		t.Errorf("t2 keeps %d events", len(evs))
	}
	ds := s.Deliveries("we_1", 10)
	if len(ds) != 1 || ds[0].Status != DeliveryPending || ds[0].Event == nil || ds[0].Event.TaskID() != "t2" {
		t.Errorf("the owed delivery after t2 retired: %+v", ds)
	}
	// A live task is never retired, whatever a proposal says.
	if n := s.RetireTasks(Retirement{IDs: []string{"t9"}, Listed: true}); n != 0 {
		t.Error("retired a queued task")
	}
	if r := restored(t, s); r.Hash() != s.Hash() || r.CountTasks() != s.CountTasks() {
		t.Error("a snapshot after retiring differs")
	}
}

// retirement is the entry that drops the retirees named (ids that are not
// among them are named alone).
func retirement(due []Retiree, ids ...string) Retirement {
	r := Retirement{IDs: ids, Listed: true}
	for _, d := range due {
		if slices.Contains(ids, d.ID) {
			r.Requests = append(r.Requests, d.Requests...)
			r.Events = append(r.Events, d.Events...)
		}
	}
	return r
}
