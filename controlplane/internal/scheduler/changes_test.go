package scheduler

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TestQueuedFromSeeds: a task created from a seed is queued from the seed
// (readyOfNew), exactly as readyOf queues the task built whole, for every
// kind, project and priority, whether the write carried seeds or tasks.
func TestQueuedFromSeeds(t *testing.T) {
	var seeds []state.SeedRequest
	kinds := []encoders.Kind{encoders.KindVideo, encoders.KindAudio, encoders.KindImage, encoders.KindAdaptive}
	for i, kind := range kinds {
		for j, prio := range []string{"", api.PriorityLow, api.PriorityNormal, api.PriorityHigh} {
			sd := state.Seed{ID: fmt.Sprintf("task_%d_%d", i, j), At: 1000 + int64(i*10+j), Kind: kind, Input: "https://example.com/a.mov",
				Options: []byte(`{"format":"mp4"}`), Project: []string{"", "prj_a"}[j%2], Priority: prio}
			for k := range api.StepKinds(kind) {
				sd.StepIDs = append(sd.StepIDs, fmt.Sprintf("step_%d_%d_%d", i, j, k))
			}
			seeds = append(seeds, state.SeedRequest{Seed: sd, Scope: "req", Key: sd.ID, BodyHash: "h"})
		}
	}
	var reqs []state.CreateRequest
	for _, sd := range seeds {
		reqs = append(reqs, sd.Request())
	}
	for _, way := range []string{"seeds", "tasks"} {
		st := state.New()
		var changes []state.Change
		st.Observe(func(c state.Change) { changes = append(changes, c) })
		if way == "seeds" {
			st.CreateSeeds(1, 1000, seeds)
		} else {
			st.CreateTasks(1, 1000, reqs)
		}
		if len(changes) != 1 {
			t.Fatalf("%s: %d changes, want 1", way, len(changes))
		}
		queued := changes[0].CreatedQueued()
		if len(queued) != len(seeds) {
			t.Fatalf("%s: %d queued, want %d", way, len(queued), len(seeds))
		}
		for i, q := range queued {
			task, ok := st.TaskRecord(seeds[i].Seed.ID)
			if !ok {
				t.Fatalf("%s: task %s not stored", way, seeds[i].Seed.ID)
			}
			if diff := cmp.Diff(readyOf(task, 0, -1), readyOfNew(q)); diff != "" {
				t.Errorf("%s: task %s queued (-built whole +from the seed):\n%s", way, task.ID, diff)
			}
		}
	}
}
