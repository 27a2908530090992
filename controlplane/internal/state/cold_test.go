package state

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// finishedTasks runs tasks to each way of ending: completed (one with its
// encode split into parts, with outputs, options and metadata), failed
// with errors, cancelled part way, and returns the store and each task as
// the write that finished it left it.
func finishedTasks(t *testing.T) (*Store, map[string]api.Task) {
	t.Helper()
	s := New()
	live := map[string]api.Task{}
	s.Observe(func(c Change) {
		for _, sc := range c.Steps {
			if sc.Task.Status.Finished() {
				live[sc.Task.ID] = sc.Task.clone().Task
			}
		}
		if c.Cancelled != nil {
			live[c.Cancelled.ID] = c.Cancelled.clone().Task
		}
	})
	run := func(id string, step int, out string) {
		task, _ := s.TaskRecord(id)
		st := task.Steps[step]
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: id, StepID: st.ID, Attempt: st.Attempt + 1, Node: "node-a", Now: 2000})
		u := StepUpdate{Op: OpComplete, TaskID: id, StepID: st.ID, Attempt: st.Attempt + 1, Now: 2100, Output: json.RawMessage(out)}
		if step == 2 {
			u.Options = json.RawMessage(`{"encoder":"libx264","video":{"width":1280}}`)
		}
		if step == 3 {
			u.TaskOutput = "s3://bucket/out.mp4"
		}
		mustApply(t, s, u)
	}
	// t1: split, parts completed, stitched, uploaded.
	enc := splitTask(t, s)
	for k := range 3 {
		id := api.PartID(enc, k)
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t1", StepID: id, Attempt: 1, Node: "node-b", Now: 3000})
		mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "t1", StepID: id, Attempt: 1, Now: 3100})
	}
	run("t1", 2, `{"object":"file","kind":"video","url":"managed://tasks/t1/staging/1/output.mp4","width":1280,"duration":20.02}`)
	run("t1", 3, `{"object":"file","kind":"video","url":"s3://bucket/out.mp4"}`)
	// t3: metadata and options; every step with output. t5: fails.
	task := newTask("t3", encoders.KindVideo, 1000)
	task.Metadata = json.RawMessage(`{"customer":"ünï","n":[1,2]}`)
	if err := json.Unmarshal([]byte(`{"width":640,"format":"webm","quality":"high"}`), &task.Options); err != nil {
		t.Fatal(err)
	}
	task5 := newTask("t5", encoders.KindAudio, 1000)
	task7 := newTask("t7", encoders.KindImage, 1000)
	s.CreateTasks(5, 1000, []CreateRequest{{Task: task, Scope: "req", Key: "k3"}, {Task: task5, Scope: "req", Key: "k5"}, {Task: task7, Scope: "req", Key: "k7"}})
	for i := range 4 {
		run("t3", i, `{"duration":3.5,"codecs":{"video":"vp9"},"has_audio":false}`)
	}
	rec, _ := s.TaskRecord("t5")
	for a := 1; a <= MaxFailures; a++ {
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "t5", StepID: rec.Steps[0].ID, Attempt: a, Node: "node-c", Now: int64(4000 + a)})
		mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "t5", StepID: rec.Steps[0].ID, Attempt: a, Now: int64(4100 + a), Retryable: true,
			Error: &api.Error{Kind: "invalid_media", Message: "moov atom not found <&>", Field: "input"}})
	}
	run("t7", 0, `{"width":64}`)
	if _, err := s.CancelTask("t7", 5000); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t3", "t5", "t7"} {
		if !live[id].Status.Finished() {
			t.Fatalf("task %s did not finish: %s", id, live[id].Status)
		}
	}
	return s, live
}

// exported compares options by what they hold (their unexported fields
// are only the complaints of a request not yet validated).
var exported = cmpopts.IgnoreUnexported(encoders.Options{})

// TestFrozenLikeLive: a finished task is kept frozen and reads back
// exactly as the write that finished it left it, by id and in lists, and
// through a snapshot.
func TestFrozenLikeLive(t *testing.T) {
	s, live := finishedTasks(t)
	check := func(name string, s *Store) {
		for id, want := range live {
			raw := s.tasks.Load().get(id)
			if _, ok := raw.(*coldTask); !ok {
				t.Errorf("%s: finished task %s stored as %T, want frozen", name, id, raw)
			}
			got, err := s.Task(id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, *got, exported); diff != "" {
				t.Errorf("%s: task %s (-live +frozen):\n%s", name, id, diff)
			}
		}
		page, _, _ := s.ListTasks(ListQuery{Limit: 10, Status: api.TaskFailed})
		if len(page) != 1 || cmp.Diff(live["t5"], *page[0], exported) != "" {
			t.Errorf("%s: failed tasks listed %v", name, ids(page))
		}
		page, _, _ = s.ListTasks(ListQuery{Limit: 10, Kind: encoders.KindImage})
		if len(page) != 1 || page[0].Status != api.TaskCancelled {
			t.Errorf("%s: image tasks listed %v", name, ids(page))
		}
		page, more, _ := s.ListTasks(ListQuery{Limit: 2, After: "t3", Order: Asc})
		if more || len(page) != 2 || page[0].ID != "t5" {
			t.Errorf("%s: after a frozen cursor %v", name, ids(page))
		}
	}
	check("frozen", s)
	r := restored(t, s)
	check("restored", r)
	if r.Hash() != s.Hash() {
		t.Error("hash differs after a snapshot")
	}
	// A report for a frozen task's step is refused as finished.
	if err := applyOne(s, StepUpdate{Op: OpComplete, TaskID: "t3", StepID: live["t3"].Steps[3].ID, Attempt: 1, Now: 9000}); err != "finished" {
		t.Errorf("a report after the end: %q, want finished", err)
	}
	if _, err := s.CancelTask("t1", 9000); err == nil {
		t.Error("cancelled a frozen task")
	}
}

// TestSnapshotBeforeColdTasks: a snapshot written before tasks were frozen
// holds finished tasks whole; they are frozen as they are read, and read
// back the same.
func TestSnapshotBeforeColdTasks(t *testing.T) {
	s, live := finishedTasks(t)
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// Rewrite every frozen line as the whole task, as the old writer did.
	var old bytes.Buffer
	for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
		var rec record
		if len(line) == 0 || json.Unmarshal(line, &rec) != nil || rec.Type != tableTasks || !isColdRecord(rec.Data) {
			old.Write(line)
			continue
		}
		c, err := readColdRecord(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		whole, _ := json.Marshal(c.mustThaw())
		rec.Data = whole
		_ = json.NewEncoder(&old).Encode(rec)
	}
	if bytes.Contains(old.Bytes(), []byte(`"cold"`)) {
		t.Fatal("the old snapshot still holds frozen tasks")
	}
	r := New()
	if err := r.Restore(&old); err != nil {
		t.Fatal(err)
	}
	for id, want := range live {
		raw := r.tasks.Load().get(id)
		if _, ok := raw.(*coldTask); !ok {
			t.Errorf("task %s restored as %T, want frozen", id, raw)
		}
		got, _ := r.Task(id)
		if diff := cmp.Diff(want, *got, exported); diff != "" {
			t.Errorf("task %s (-live +restored):\n%s", id, diff)
		}
	}
	if r.Hash() != s.Hash() {
		t.Error("hash differs")
	}
}

// TestColdRecordRefused: a frozen task that does not decode makes the
// snapshot unreadable, naming the task, rather than a task that cannot be
// read later.
func TestColdRecordRefused(t *testing.T) {
	s, _ := finishedTasks(t)
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	for name, mangle := range map[string]func(z []byte) []byte{
		"unknown version": func(z []byte) []byte { return append([]byte{9}, z[1:]...) },
		"truncated":       func(z []byte) []byte { return z[:len(z)/2] },
		"empty":           func([]byte) []byte { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			var bad bytes.Buffer
			done := false
			for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
				var rec record
				if !done && len(line) > 0 && json.Unmarshal(line, &rec) == nil && rec.Type == tableTasks && isColdRecord(rec.Data) {
					var cr coldRecord
					_ = json.Unmarshal(rec.Data, &cr)
					cr.Z = mangle(cr.Z)
					rec.Data, _ = json.Marshal(cr)
					_ = json.NewEncoder(&bad).Encode(rec)
					done = true
					continue
				}
				bad.Write(line)
			}
			err := New().Restore(&bad)
			if err == nil || !strings.Contains(err.Error(), "task t") {
				t.Errorf("restore: %v, want an error naming the task", err)
			}
		})
	}
}
