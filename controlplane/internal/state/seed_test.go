package state

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TestSeededTasks: tasks created from seeds are kept as their seeds until
// their first change, yet every reader sees what a store that built them
// whole holds: the same tasks read, listed and hashed, the same events,
// the same active tasks and snapshot, the same after a lease and a
// cancel; none counts as finished for retirement.
func TestSeededTasks(t *testing.T) {
	var seeds []SeedRequest
	for i := range 6 {
		kind := encoders.KindVideo
		if i%3 == 1 {
			kind = encoders.KindAudio
		}
		sd := Seed{ID: fmt.Sprintf("task_%02d", i), At: 1000 + int64(i), Kind: kind, Input: "https://example.com/a.mov",
			Options: []byte(`{"format":"mp4","width":640}`), Project: []string{"", "prj_a"}[i%2]}
		if i == 2 {
			sd.Output, sd.Metadata, sd.Priority = "s3://b/out.mp4", []byte(`{"k":"v"}`), "high"
		}
		for k := range len(api.StepKinds(kind)) {
			sd.StepIDs = append(sd.StepIDs, fmt.Sprintf("step_%02d_%d", i, k))
		}
		seeds = append(seeds, SeedRequest{Seed: sd, Scope: "req", Key: fmt.Sprintf("k%d", i), BodyHash: "h"})
	}
	seeded, whole := New(), New()
	seeded.SetIndex(5)
	res := seeded.CreateSeeds(5, 1000, seeds)
	var reqs []CreateRequest
	for _, sd := range seeds {
		reqs = append(reqs, sd.Request())
	}
	whole.SetIndex(5)
	want := whole.CreateTasks(5, 1000, reqs)
	for i := range res {
		if res[i].Task != nil {
			t.Fatalf("result %d built before it was asked for", i)
		}
		res[i].Resolve()
		if diff := cmp.Diff(want[i].Task, res[i].Task, exported); diff != "" {
			t.Errorf("result %d (-whole +seeded):\n%s", i, diff)
		}
	}
	if _, ok := seeded.tasks.Load().get("task_00").(*seededTask); !ok {
		t.Fatalf("a new task is stored as a %T, not its seed", seeded.tasks.Load().get("task_00"))
	}

	same := func(when string) {
		t.Helper()
		if seeded.Hash() != whole.Hash() {
			t.Errorf("%s: the hashes differ", when)
		}
		for _, q := range []ListQuery{{Limit: 10}, {Limit: 10, Project: "prj_a"}, {Limit: 10, Status: api.TaskQueued, Kind: encoders.KindAudio}} {
			a, _, errA := seeded.ListTasks(q)
			b, _, errB := whole.ListTasks(q)
			if diff := cmp.Diff(b, a, exported); diff != "" || errA != nil || errB != nil {
				t.Errorf("%s: list %+v (-whole +seeded):\n%s", when, q, diff)
			}
		}
		for _, sd := range seeds {
			a, _ := seeded.Task(sd.Seed.ID)
			b, _ := whole.Task(sd.Seed.ID)
			if diff := cmp.Diff(b, a, exported); diff != "" {
				t.Errorf("%s: %s (-whole +seeded):\n%s", when, sd.Seed.ID, diff)
			}
			pa, _ := seeded.TaskProject(sd.Seed.ID)
			pb, _ := whole.TaskProject(sd.Seed.ID)
			ra, _ := seeded.TaskRecord(sd.Seed.ID)
			rb, _ := whole.TaskRecord(sd.Seed.ID)
			if pa != pb || !cmp.Equal(rb, ra, exported) {
				t.Errorf("%s: %s's project %q against %q, or its record differs", when, sd.Seed.ID, pa, pb)
			}
		}
		ea, _, _ := seeded.Events(EventQuery{Limit: 100})
		eb, _, _ := whole.Events(EventQuery{Limit: 100})
		if len(ea) != len(eb) {
			t.Fatalf("%s: %d events against %d", when, len(ea), len(eb))
		}
		for i := range ea {
			if ea[i].Seq != eb[i].Seq || ea[i].Type != eb[i].Type || ea[i].TaskID() != eb[i].TaskID() || ea[i].Project() != eb[i].Project() ||
				!cmp.Equal(eb[i].Task(), ea[i].Task(), exported) {
				t.Errorf("%s: event %d differs", when, i)
			}
		}
		if diff := cmp.Diff(whole.ActiveTasks(), seeded.ActiveTasks(), exported); diff != "" {
			t.Errorf("%s: active tasks (-whole +seeded):\n%s", when, diff)
		}
		if n := seeded.RetirableCount(1<<62, 100); n != whole.RetirableCount(1<<62, 100) {
			t.Errorf("%s: %d tasks to retire, against %d", when, n, whole.RetirableCount(1<<62, 100))
		}
		if r := restored(t, seeded); r.Hash() != whole.Hash() {
			t.Errorf("%s: restored from a snapshot, the hash differs", when)
		}
	}
	same("created")

	first, _ := seeded.TaskRecord("task_00")
	for _, s := range []*Store{seeded, whole} {
		s.SetIndex(6)
		mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "task_00", StepID: first.Steps[0].ID, Attempt: 1, Node: "a", Now: 2000})
		s.SetIndex(7)
		if _, err := s.CancelTask("task_01", 2100); err != nil {
			t.Fatal(err)
		}
	}
	same("leased and cancelled")
	if n := seeded.RetirableCount(1<<62, 100); n != 1 {
		t.Errorf("%d tasks to retire, want the one cancelled", n)
	}
	// A replay of a seeded task's key answers the task.
	seeded.SetIndex(8)
	again := seeded.CreateSeeds(8, 1000, seeds[2:3])
	if !again[0].Replayed || again[0].Task == nil || again[0].Task.ID != "task_02" || *again[0].Task.Output != "s3://b/out.mp4" {
		t.Errorf("a replay: %+v", again[0])
	}
}

// TestSeedTaskJSON: a seed writes its task's JSON byte for byte as the
// task built from it does, over every kind, any number of step ids,
// options and metadata of every shape, strings to escape.
func TestSeedTaskJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	for i := range 2000 {
		sd := Seed{
			ID:       pick("task_01", "task_<&>", "tâsk\u2028", ""),
			At:       []int64{0, 1, 1_800_000_000_000}[rng.IntN(3)],
			Kind:     encoders.Kind(pick("video", "audio", "image", "adaptive_video", "", "bogus")),
			Input:    pick("https://example.com/a.mov", `https://example.com/"q"\<a>`, ""),
			Output:   pick("", "s3://bucket/o.mp4", "s3://b/ünï&.mp4"),
			Project:  pick("", "prj_a", "p<1>"),
			Priority: pick("", "low", "high"),
		}
		for k := range rng.IntN(6) {
			sd.StepIDs = append(sd.StepIDs, fmt.Sprintf("step_%d_%d", i, k))
		}
		if opts := pick("", "{}", `{"format":"mp4","width":1280}`, `{"width":640,"height":360,"quality":"high","format":"webm"}`,
			`{"bogus":1}`, `{"width":"wide"}`, `{"format":"mp4","audio":{"codec":"aac"}}`); opts != "" {
			sd.Options = json.RawMessage(opts)
		}
		if meta := pick("", "null", "{}", "[]", `{"a":"<b>"}`, `{"b": [1, 2.50] , "c":{}}`); meta != "" {
			sd.Metadata = json.RawMessage(meta)
		}
		task := sd.Task()
		want, werr := task.AppendJSON(nil)
		got, err := sd.AppendTaskJSON(nil)
		if (err != nil) != (werr != nil) || string(got) != string(want) {
			t.Fatalf("seed %+v:\n%s (error %v)\nits task writes:\n%s (error %v)", sd, got, err, want, werr)
		}
		// And as a snapshot holds it: the task as stored, with its runs.
		st := &seededTask{Seed: sd, Seq: uint64(i)}
		want, werr = json.Marshal(st.task())
		got, err = st.appendJSON(nil)
		if (err != nil) != (werr != nil) || string(got) != string(want) {
			t.Fatalf("seeded task %+v:\n%s (error %v)\njson.Marshal writes:\n%s (error %v)", sd, got, err, want, werr)
		}
	}
}
