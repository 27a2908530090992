package state

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDueDeliveries: each endpoint's due deliveries are read on their own,
// soonest first; a task's later event waits while an earlier one is
// pending to the same endpoint, and is held behind its retry; a snapshot
// keeps the order.
func TestDueDeliveries(t *testing.T) {
	s := New()
	s.ApplyWebhookOps([]WebhookOp{
		{Op: WebhookCreate, Now: 1, Endpoint: &Endpoint{ID: "wh_a", URL: "http://a", Events: []string{"*"}}},
		{Op: WebhookCreate, Now: 1, Endpoint: &Endpoint{ID: "wh_b", URL: "http://b", Events: []string{"task.created"}}},
	})
	s.SetIndex(2)
	mustCreate(t, s, 2, "t1", "t2") // at 1000
	s.SetIndex(3)
	if _, err := s.CancelTask("t1", 1100); err != nil {
		t.Fatal(err)
	}
	none := func(string) bool { return false }
	ids := func(ds []*Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	created1, created2, cancelled1 := DeliveryID(2<<16, "wh_a"), DeliveryID(2<<16|1, "wh_a"), DeliveryID(3<<16, "wh_a")

	// t1's cancel waits for its creation.
	if diff := cmp.Diff([]string{created1, created2}, ids(s.DueDeliveries("wh_a", 2000, 10, none))); diff != "" {
		t.Errorf("due to wh_a (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{DeliveryID(2<<16, "wh_b"), DeliveryID(2<<16|1, "wh_b")}, ids(s.DueDeliveries("wh_b", 2000, 10, none))); diff != "" {
		t.Errorf("due to wh_b (-want +got):\n%s", diff)
	}
	// One under way is left out; the limit holds.
	if diff := cmp.Diff([]string{created2}, ids(s.DueDeliveries("wh_a", 2000, 1, func(id string) bool { return id == created1 }))); diff != "" {
		t.Errorf("due to wh_a, the first under way (-want +got):\n%s", diff)
	}
	if n := s.PendingDeliveries(); n != 5 {
		t.Errorf("pending: %d, want 5", n)
	}

	// t1's creation fails and is retried at 9000: its cancel is held
	// behind it; t2 goes.
	s.ApplyWebhookOps([]WebhookOp{{Op: WebhookAttempt, ID: "wh_a", Delivery: created1, Attempt: &Attempt{At: 2000, Result: "failed", Status: 500}, NextAt: 9000}})
	if d, _ := s.Delivery(cancelled1); d.NextAt != 9000 {
		t.Errorf("the cancel behind a retry is due at %d, want 9000", d.NextAt)
	}
	if diff := cmp.Diff([]string{created2}, ids(s.DueDeliveries("wh_a", 5000, 10, none))); diff != "" {
		t.Errorf("due to wh_a at 5000 (-want +got):\n%s", diff)
	}
	// An event made while an earlier one of its task is being retried is
	// held behind it from the start.
	s.ApplyWebhookOps([]WebhookOp{{Op: WebhookAttempt, ID: "wh_a", Delivery: created2, Attempt: &Attempt{At: 5000, Result: "failed", Status: 500}, NextAt: 8000}})
	s.SetIndex(4)
	if _, err := s.CancelTask("t2", 5000); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Delivery(DeliveryID(4<<16, "wh_a")); d.NextAt != 8000 {
		t.Errorf("t2's cancel, made while its creation is retried, is due at %d, want 8000", d.NextAt)
	}
	if diff := cmp.Diff([]string{created2, created1}, ids(s.DueDeliveries("wh_a", 9000, 10, none))); diff != "" {
		t.Errorf("due to wh_a at 9000 (-want +got):\n%s", diff)
	}

	// Restored from a snapshot, the indexes are the same.
	r := restored(t, s)
	if diff := cmp.Diff(ids(s.DueDeliveries("wh_a", 9000, 10, none)), ids(r.DueDeliveries("wh_a", 9000, 10, none))); diff != "" {
		t.Errorf("restored (-want +got):\n%s", diff)
	}

	// Delivered, it lets the cancel go.
	s.ApplyWebhookOps([]WebhookOp{{Op: WebhookAttempt, ID: "wh_a", Delivery: created1, Attempt: &Attempt{At: 9000, Result: "delivered", Status: 200}}})
	if diff := cmp.Diff([]string{created2, cancelled1}, ids(s.DueDeliveries("wh_a", 9000, 10, none))); diff != "" {
		t.Errorf("due to wh_a once t1's creation is delivered (-want +got):\n%s", diff)
	}
}

// TestTrimKeepsWhatIsOwed: trimming by count forgets the oldest events
// beyond the bound, expires cursors before them, and a delivery still
// owed keeps its event.
func TestTrimKeepsWhatIsOwed(t *testing.T) {
	s := New()
	s.ApplyWebhookOps([]WebhookOp{{Op: WebhookCreate, Now: 1, Endpoint: &Endpoint{ID: "wh_a", URL: "http://a", Events: []string{"task.created"}}}})
	for i := range 10 {
		s.SetIndex(uint64(i + 2))
		mustCreate(t, s, uint64(i+2), fmt.Sprintf("t%d", i))
	}
	first := DeliveryID(2<<16, "wh_a")
	// All but the first are delivered.
	for i := 1; i < 10; i++ {
		s.ApplyWebhookOps([]WebhookOp{{Op: WebhookAttempt, ID: "wh_a", Delivery: DeliveryID(uint64(i+2)<<16, "wh_a"), Attempt: &Attempt{At: 2000, Result: "delivered", Status: 204}}})
	}
	if n := s.EventCount(); n != 10 {
		t.Fatalf("events: %d, want 10", n)
	}
	if n := s.TrimEvents(0, 4); n != 6 || s.EventCount() != 4 {
		t.Fatalf("trimmed %d, %d kept; want 6 and 4", n, s.EventCount())
	}
	if _, _, err := s.Events(EventQuery{After: 2 << 16, Limit: 10}); !errors.Is(err, ErrCursorExpired) {
		t.Errorf("a cursor before the bound: %v, want ErrCursorExpired", err)
	}
	d, err := s.Delivery(first)
	if err != nil || d.Status != DeliveryPending || d.Event == nil || d.Event.TaskID() != "t0" {
		t.Fatalf("the owed delivery: %+v, %v; want pending with its event", d, err)
	}
	if _, err := s.Delivery(DeliveryID(3<<16, "wh_a")); err == nil {
		t.Error("a delivered delivery of a trimmed event is kept")
	}
	// A snapshot keeps the count and the owed event.
	r := restored(t, s)
	if d, _ := r.Delivery(first); r.EventCount() != 4 || d == nil || d.Event == nil || d.Event.Seq != 2<<16 {
		t.Errorf("restored: %d events, delivery %+v", r.EventCount(), d)
	}
}

// TestOutboxFollowsEndpoints: events queue deliveries only while an
// endpoint exists, and a store restored from a snapshot that holds one
// queues them as the store it came from did.
func TestOutboxFollowsEndpoints(t *testing.T) {
	s := New()
	s.SetIndex(2)
	mustCreate(t, s, 2, "t1")
	if n := s.PendingDeliveries(); n != 0 {
		t.Fatalf("pending with no endpoint: %d", n)
	}
	s.ApplyWebhookOps([]WebhookOp{{Op: WebhookCreate, Now: 1, Endpoint: &Endpoint{ID: "wh_a", URL: "http://a", Events: []string{"*"}}}})
	r := restored(t, s)
	for _, st := range []*Store{s, r} {
		st.SetIndex(3)
		mustCreate(t, st, 3, "t2")
		if n := st.PendingDeliveries(); n != 1 {
			t.Fatalf("pending once wh_a exists: %d, want 1", n)
		}
	}
	s.ApplyWebhookOps([]WebhookOp{{Op: WebhookDelete, ID: "wh_a"}})
	s.SetIndex(4)
	mustCreate(t, s, 4, "t3")
	if n := s.PendingDeliveries(); n != 0 {
		t.Fatalf("pending once wh_a is deleted: %d, want 0", n)
	}
}
