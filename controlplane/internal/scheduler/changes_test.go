package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
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

// countingHandler counts the records it handles.
type countingHandler struct {
	slog.Handler
	n *atomic.Int64 // shared with the handlers made from it
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithAttrs(attrs), n: h.n}
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
// each line whole and in the order of the tasks, and lines outside a
// batch are written as they come. With a LogHandler the lines are made
// from one render and are the lines slog writes, and a task whose ids
// the render cannot hold as they are is logged through slog in its place.
func TestQueuedLinesOneWrite(t *testing.T) {
	for _, shaped := range []bool{false, true} {
		t.Run(fmt.Sprintf("shaped=%v", shaped), func(t *testing.T) {
			out := &writeCounter{}
			lines := linebuf.New(out)
			counted := &countingHandler{Handler: slog.NewJSONHandler(lines, nil), n: new(atomic.Int64)}
			cfg := Config{Logger: slog.New(counted), LogBurst: lines}
			if shaped {
				cfg.LogHandler = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }
			}
			d, st := mustDispatcher(t, cfg)
			before, handled := out.count(), counted.n.Load()
			var seeds []state.SeedRequest
			for i := range 50 {
				id := fmt.Sprintf("task_burst_%d", i)
				if i == 7 {
					id = `task "quoted"` // escaped in JSON: not plain
				}
				sd := state.Seed{ID: id, At: 1000, Kind: encoders.KindVideo, Input: "https://example.com/a.mov"}
				for k := range api.StepKinds(sd.Kind) {
					sd.StepIDs = append(sd.StepIDs, fmt.Sprintf("step_burst_%d_%d", i, k))
				}
				seeds = append(seeds, state.SeedRequest{Seed: sd, Scope: "req", Key: sd.ID, BodyHash: "h"})
			}
			st.CreateSeeds(1, 1000, seeds)
			if got := out.count() - before; got != 1 {
				t.Errorf("a batch of %d creates made %d writes to the log, want 1", len(seeds), got)
			}
			if want := map[bool]int{false: len(seeds), true: 1}[shaped]; counted.n.Load()-handled != int64(want) {
				t.Errorf("%d lines went through the logger's handler, want %d", counted.n.Load()-handled, want)
			}
			var queued []string
			for _, rec := range out.records(t) {
				if rec["msg"] != "task queued" {
					continue
				}
				queued = append(queued, rec["task_id"].(string))
				want := map[string]any{"time": rec["time"], "level": "INFO", "msg": "task queued", "component": "scheduler",
					"task_id": rec["task_id"], "step_id": strings.Replace(rec["task_id"].(string), "task", "step", 1) + "_0", "node_id": "", "kind": "video"}
				if rec["task_id"] == seeds[7].Seed.ID {
					want["step_id"] = "step_burst_7_0"
				}
				if diff := cmp.Diff(want, rec); diff != "" {
					t.Errorf("line (-want +got):\n%s", diff)
				}
			}
			var want []string
			for _, sd := range seeds {
				want = append(want, sd.Seed.ID)
			}
			if diff := cmp.Diff(want, queued); diff != "" {
				t.Errorf("the tasks of the task queued lines (-want +got):\n%s", diff)
			}
			before = out.count()
			d.log.Info("a line on its own")
			if got := out.count() - before; got != 1 {
				t.Errorf("a line outside a batch made %d writes, want 1 at once", got)
			}
		})
	}
}
