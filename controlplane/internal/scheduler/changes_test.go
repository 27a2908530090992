package scheduler

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/linebuf"
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
		queued := slices.Collect(changes[0].CreatedQueued())
		if len(queued) != len(seeds) || changes[0].Created() != len(seeds) {
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

// writeCounter counts the writes its log gets.
type writeCounter struct {
	logBuffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	return w.logBuffer.Write(p)
}

func (w *writeCounter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// TestQueuedLinesOneWrite: the "task queued" lines of one batch of creates
// reach the log in one write when the logger's writer can hold a burst,
// each line whole, and lines outside a batch are written as they come.
func TestQueuedLinesOneWrite(t *testing.T) {
	out := &writeCounter{}
	lines := linebuf.New(out)
	d, st := mustDispatcher(t, Config{Logger: slog.New(slog.NewJSONHandler(lines, nil)), LogBurst: lines})
	before := out.count()
	var seeds []state.SeedRequest
	for i := range 50 {
		sd := state.Seed{ID: fmt.Sprintf("task_burst_%d", i), At: 1000, Kind: encoders.KindVideo, Input: "https://example.com/a.mov"}
		for k := range api.StepKinds(sd.Kind) {
			sd.StepIDs = append(sd.StepIDs, fmt.Sprintf("step_burst_%d_%d", i, k))
		}
		seeds = append(seeds, state.SeedRequest{Seed: sd, Scope: "req", Key: sd.ID, BodyHash: "h"})
	}
	st.CreateSeeds(1, 1000, seeds)
	if got := out.count() - before; got != 1 {
		t.Errorf("a batch of %d creates made %d writes to the log, want 1", len(seeds), got)
	}
	queued := map[string]bool{}
	for _, rec := range out.records(t) {
		if rec["msg"] == "task queued" {
			queued[rec["task_id"].(string)] = true
		}
	}
	for _, sd := range seeds {
		if !queued[sd.Seed.ID] {
			t.Errorf("no task queued line for %s", sd.Seed.ID)
		}
	}
	before = out.count()
	d.log.Info("a line on its own")
	if got := out.count() - before; got != 1 {
		t.Errorf("a line outside a batch made %d writes, want 1 at once", got)
	}
}
