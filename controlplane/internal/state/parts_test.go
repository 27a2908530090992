package state

import (
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// applyOne applies one update and returns its refusal ("" when applied).
func applyOne(s *Store, u StepUpdate) string { return s.ApplyStepUpdates([]StepUpdate{u})[0].Err }

func mustApply(t *testing.T, s *Store, u StepUpdate) {
	t.Helper()
	if err := applyOne(s, u); err != "" {
		t.Fatalf("%s %s attempt %d: %s", u.Op, u.StepID, u.Attempt, err)
	}
}

// splitTask creates a video task t1 (mustCreate: odd ids are video), runs
// its probe and ingest, and splits its encode step into two video parts
// and the audio. It returns the encode step's id.
func splitTask(t *testing.T, s *Store) string {
	t.Helper()
	mustCreate(t, s, 1, "t1")
	task, _ := s.TaskRecord("t1")
	enc := task.Steps[2].ID
	parts := []api.Part{
		{ID: api.PartID(enc, 0), Index: 0, Kind: api.PartVideo, End: 10, Frames: 300},
		{ID: api.PartID(enc, 1), Index: 1, Kind: api.PartVideo, Start: 10, End: 20, FirstFrame: 300, Frames: 300},
		{ID: api.PartID(enc, 2), Index: 2, Kind: api.PartAudio, End: 20},
	}
	mustApply(t, s, StepUpdate{Op: OpSplit, TaskID: "t1", StepID: enc, Now: 1500, Parts: parts})
	if err := applyOne(s, StepUpdate{Op: OpSplit, TaskID: "t1", StepID: enc, Now: 1500, Parts: parts}); err != "stale" {
		t.Errorf("a second split: %q, want stale", err)
	}
	for i := range 2 {
		id := task.Steps[i].ID
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: id, Attempt: 1, Node: "a", Now: 2000})
		mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: id, Attempt: 1, Now: 2100, Output: []byte(`{}`)})
	}
	return enc
}

func TestSplitParts(t *testing.T) {
	s := New()
	enc := splitTask(t, s)
	// The step runs its parts first.
	if err := applyOne(s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: enc, Attempt: 1, Node: "a", Now: 3000}); err != "stale" {
		t.Errorf("the step leased before its parts: %q, want stale", err)
	}
	p0, p1, p2 := api.PartID(enc, 0), api.PartID(enc, 1), api.PartID(enc, 2)
	for _, id := range []string{p0, p1, p2} {
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: id, Attempt: 1, Node: "b", Now: 3000})
	}
	task, _ := s.TaskRecord("t1")
	if st := task.Steps[2]; st.Status != api.StepProcessing || st.StartedAt == nil || st.Parts[0].Status != api.StepProcessing || *st.Parts[0].Node != "b" {
		t.Fatalf("encode step %s, part 0 %+v", st.Status, st.Parts[0])
	}
	// A stale report, a failure that retries part 1 alone, a release.
	if err := applyOne(s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: p0, Attempt: 2, Now: 3100}); err != "stale" {
		t.Errorf("a report of another attempt: %q, want stale", err)
	}
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: p0, Attempt: 1, Now: 3100})
	mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t1", StepID: p1, Attempt: 1, Now: 3200, Retryable: true, Backoff: 1000, Error: &api.Error{Kind: "encode_failed", Message: "x"}})
	mustApply(t, s, StepUpdate{Op: OpRelease, TaskID: "t1", StepID: p2, Attempt: 1, Now: 3300, Avoid: true})
	task, _ = s.TaskRecord("t1")
	parts, runs := task.Steps[2].Parts, task.Runs[2].Parts
	if parts[0].Status != api.StepCompleted || parts[1].Status != api.StepQueued || parts[2].Status != api.StepQueued {
		t.Fatalf("parts %s %s %s", parts[0].Status, parts[1].Status, parts[2].Status)
	}
	if runs[1].Failures != 1 || runs[1].NotBefore != 4200 || runs[2].Avoid != "b" || runs[0].Holder != "b" {
		t.Errorf("part runs %+v", runs)
	}
	// The others again; the last one queues the step, which stitches.
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: p1, Attempt: 2, Node: "a", Now: 4300})
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: p2, Attempt: 2, Node: "a", Now: 4300})
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: p1, Attempt: 2, Now: 4400})
	task, _ = s.TaskRecord("t1")
	if task.Steps[2].Status != api.StepProcessing {
		t.Errorf("with a part left the step is %s", task.Steps[2].Status)
	}
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: p2, Attempt: 2, Now: 4500})
	task, _ = s.TaskRecord("t1")
	if task.Steps[2].Status != api.StepQueued || task.Runs[2].ReadyAt != 4500 {
		t.Fatalf("with every part in the step is %s (ready at %d)", task.Steps[2].Status, task.Runs[2].ReadyAt)
	}
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: enc, Attempt: 1, Node: "a", Now: 4600})
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: enc, Attempt: 1, Now: 4700, Output: []byte(`{"url":"x"}`)})
	task, _ = s.TaskRecord("t1")
	if task.Steps[2].Status != api.StepCompleted || task.Steps[3].Status != api.StepQueued {
		t.Errorf("after the stitch: encode %s, upload %s", task.Steps[2].Status, task.Steps[3].Status)
	}
}

func TestSplitPartFailsTask(t *testing.T) {
	s := New()
	enc := splitTask(t, s)
	p1 := api.PartID(enc, 1)
	for attempt := 1; attempt <= MaxFailures; attempt++ {
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: p1, Attempt: attempt, Node: "a", Now: 3000})
		mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t1", StepID: p1, Attempt: attempt, Now: 3100, Retryable: true, Error: &api.Error{Kind: "encode_failed", Message: "bad"}})
	}
	task, _ := s.TaskRecord("t1")
	st := task.Steps[2]
	if task.Status != api.TaskFailed || st.Status != api.StepFailed || st.Parts[1].Status != api.StepFailed ||
		st.Parts[0].Status != api.StepCancelled || task.Steps[3].Status != api.StepCancelled {
		t.Errorf("task %s, step %s, parts %s %s, upload %s", task.Status, st.Status, st.Parts[0].Status, st.Parts[1].Status, task.Steps[3].Status)
	}
}

func TestCancelSplitTask(t *testing.T) {
	s := New()
	enc := splitTask(t, s)
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: api.PartID(enc, 0), Attempt: 1, Node: "a", Now: 3000})
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: api.PartID(enc, 0), Attempt: 1, Now: 3100})
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: api.PartID(enc, 1), Attempt: 1, Node: "a", Now: 3000})
	got, err := s.CancelTask("t1", 4000)
	if err != nil {
		t.Fatal(err)
	}
	ps := got.Steps[2].Parts
	if ps[0].Status != api.StepCompleted || ps[1].Status != api.StepCancelled || ps[1].FinishedAt == nil || ps[2].Status != api.StepCancelled {
		t.Errorf("parts after cancel: %s %s %s", ps[0].Status, ps[1].Status, ps[2].Status)
	}
	if err := applyOne(s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: api.PartID(enc, 1), Attempt: 1, Now: 4100}); err != "finished" {
		t.Errorf("a late part report: %q, want finished", err)
	}
}

// TestPartBackup: a backup copy runs beside its part with the next
// attempt; the first copy to complete wins, a copy that fails or is
// released while the other runs ends alone, and no attempt number is
// given twice.
func TestPartBackup(t *testing.T) {
	s := New()
	enc := splitTask(t, s)
	p0, p1 := api.PartID(enc, 0), api.PartID(enc, 1)
	for _, id := range []string{p0, p1} {
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: id, Attempt: 1, Node: "a", Now: 3000})
	}
	for name, u := range map[string]StepUpdate{
		"on its own node":   {Op: OpBackup, TaskID: "t1", StepID: p0, Attempt: 2, Node: "a", Now: 3500},
		"a reused attempt":  {Op: OpBackup, TaskID: "t1", StepID: p0, Attempt: 1, Node: "b", Now: 3500},
		"of a queued part":  {Op: OpBackup, TaskID: "t1", StepID: api.PartID(enc, 2), Attempt: 1, Node: "b", Now: 3500},
		"a report of other": {Op: OpComplete, TaskID: "t1", StepID: p0, Attempt: 2, Now: 3500},
	} {
		if err := applyOne(s, u); err != "stale" {
			t.Errorf("%s: %q, want stale", name, err)
		}
	}
	mustApply(t, s, StepUpdate{Op: OpBackup, TaskID: "t1", StepID: p0, Attempt: 2, Node: "b", Now: 3500})
	mustApply(t, s, StepUpdate{Op: OpBackup, TaskID: "t1", StepID: p1, Attempt: 2, Node: "c", Now: 3500})
	if err := applyOne(s, StepUpdate{Op: OpBackup, TaskID: "t1", StepID: p0, Attempt: 3, Node: "c", Now: 3600}); err != "stale" {
		t.Errorf("a second backup: %q, want stale", err)
	}
	task, _ := s.TaskRecord("t1")
	if b := task.Steps[2].Parts[0].Backup; b == nil || b.Node != "b" || b.Attempt != 2 || b.StartedAt != 3500 || *task.Steps[2].Parts[0].Node != "a" {
		t.Fatalf("part 0 with its backup: %+v, backup %+v", task.Steps[2].Parts[0], b)
	}

	// Part 0: the backup wins; the first copy's late report is stale.
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: p0, Attempt: 2, Now: 4000})
	if err := applyOne(s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: p0, Attempt: 1, Now: 4100}); err != "stale" {
		t.Errorf("the loser's report: %q, want stale", err)
	}
	// Part 1: the first copy fails; the backup runs on and is the part.
	mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t1", StepID: p1, Attempt: 1, Now: 4000, Retryable: true, Error: &api.Error{Kind: "stalled", Message: "node a is gone"}})
	task, _ = s.TaskRecord("t1")
	parts, runs := task.Steps[2].Parts, task.Runs[2].Parts
	if parts[0].Status != api.StepCompleted || *parts[0].Node != "b" || parts[0].Attempt != 2 || parts[0].Backup != nil || runs[0].Holder != "b" {
		t.Errorf("part 0 after its backup won: %+v (holder %q)", parts[0], runs[0].Holder)
	}
	if parts[1].Status != api.StepProcessing || *parts[1].Node != "c" || parts[1].Attempt != 2 || parts[1].Backup != nil || runs[1].Failures != 0 {
		t.Errorf("part 1 after its first copy failed: %+v (failures %d)", parts[1], runs[1].Failures)
	}

	// A backup that fails: the part runs on as it was, and its next
	// attempt comes after the backup's.
	mustApply(t, s, StepUpdate{Op: OpBackup, TaskID: "t1", StepID: p1, Attempt: 3, Node: "a", Now: 4500})
	mustApply(t, s, StepUpdate{Op: OpRelease, TaskID: "t1", StepID: p1, Attempt: 3, Now: 4600})
	mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t1", StepID: p1, Attempt: 2, Now: 4700, Retryable: true, Error: &api.Error{Kind: "encode_failed", Message: "x"}})
	if err := applyOne(s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: p1, Attempt: 3, Node: "a", Now: 5000}); err != "stale" {
		t.Errorf("an attempt number given twice: %q, want stale", err)
	}
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: p1, Attempt: 4, Node: "a", Now: 5000})
	task, _ = s.TaskRecord("t1")
	if p := task.Steps[2].Parts[1]; p.Attempt != 4 || task.Runs[2].Parts[1].Failures != 1 {
		t.Errorf("part 1 after its backup was released and it failed: %+v (failures %d)", p, task.Runs[2].Parts[1].Failures)
	}
}
