package state

import (
	"bytes"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

// A snapshot holds the request keys as they were when it was taken,
// whatever the state machine does with them while it is written.
func TestSnapshotRequestsStayPut(t *testing.T) {
	s := New()
	create := func(s *Store, idx uint64, id, key string) CreateResult {
		return s.CreateTasks(idx, 10, []CreateRequest{{Task: newTask(id, encoders.KindVideo, 10), Scope: "idem:k", Key: key, BodyHash: "h"}})[0]
	}
	create(s, 1, "t1", "k1")
	sn := s.Snapshot()
	create(s, 2, "t2", "k2")
	if n := s.ExpireRequests(10 + IdempotencyTTL); n != 2 {
		t.Fatalf("expired %d keys, want 2", n)
	}
	if n := s.reqs.Load().len(); n != 0 {
		t.Fatalf("%d keys left after they expired", n)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if n := r.reqs.Load().len(); n != 1 {
		t.Errorf("the snapshot holds %d keys, want the 1 there was when it was taken", n)
	}
	if res := create(r, 3, "t3", "k1"); !res.Replayed || res.Task.ID != "t1" {
		t.Errorf("k1 after the restore: %+v, want a replay of t1", res)
	}
	if res := create(r, 4, "t4", "k2"); res.Replayed {
		t.Errorf("k2, stored after the snapshot, came back with it: %+v", res)
	}
}
