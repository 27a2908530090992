package state

import (
	"bytes"
	"slices"
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
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

// ActiveTasks lists the tasks that have not ended, in the order they were
// created, as they move, end, and come back from a snapshot.
func TestActiveTasks(t *testing.T) {
	s := New()
	mustCreate(t, s, 1, "t1", "t2", "t3")
	mustCreate(t, s, 2, "t4")
	if _, err := s.CancelTask("t2", 1500); err != nil {
		t.Fatal(err)
	}
	task, _ := s.TaskRecord("t3")
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t3", StepID: task.Steps[0].ID, Attempt: 1, Node: "node-a", Now: 2000})
	active := func(s *Store) []string {
		var ids []string
		for _, t := range s.ActiveTasks() {
			ids = append(ids, t.ID)
		}
		return ids
	}
	want := []string{"t1", "t3", "t4"}
	if got := active(s); !slices.Equal(got, want) {
		t.Errorf("active %v, want %v", got, want)
	}
	if got := active(restored(t, s)); !slices.Equal(got, want) {
		t.Errorf("active after a snapshot %v, want %v", got, want)
	}
	if got := s.ActiveTasks(); len(got) != 3 || got[1].Status != api.TaskProcessing {
		t.Errorf("t3 is not shown processing: %+v", got)
	}
	// Finished every way (completed, failed, cancelled): none is active.
	if f, _ := finishedTasks(t); len(f.ActiveTasks()) != 0 {
		t.Errorf("finished tasks listed as active: %v", active(f))
	}
}
