package httpapi

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TestStampIDs: a task gets an id and one for each of its steps, each a
// prefix and a lowercase ULID of the task's time, and ids made in one
// millisecond, by many goroutines at once, are distinct and sort in the
// order they were made.
func TestStampIDs(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	a := &API{cfg: Config{Now: func() time.Time { return at }}}
	for _, kind := range encoders.Kinds {
		var sd state.Seed
		sd.Kind = kind
		a.stamp(&sd)
		if got, want := len(sd.StepIDs), len(api.StepKinds(kind)); got != want {
			t.Fatalf("%s: %d step ids, want one for each of its %d steps", kind, got, want)
		}
		if sd.At != at.UnixMilli() {
			t.Errorf("%s: at %d, want %d", kind, sd.At, at.UnixMilli())
		}
		checkID(t, sd.ID, "task_", at)
		for _, id := range sd.StepIDs {
			checkID(t, id, "step_", at)
		}
	}

	const workers, each = 8, 500
	made := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				var sd state.Seed
				a.stamp(&sd)
				made[w] = append(made[w], sd.ID)
				made[w] = append(made[w], sd.StepIDs...)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ids := range made {
		for i, id := range ids {
			if seen[id] {
				t.Fatalf("id %s made twice", id)
			}
			seen[id] = true
			if i > 0 && id[5:] <= ids[i-1][5:] {
				t.Fatalf("id %s made after %s sorts before it", id, ids[i-1])
			}
		}
	}
}

// TestStampBatch: a batch's tasks share one time, each has ids of its
// own, made in order, and a task's step ids cannot grow into the next
// task's.
func TestStampBatch(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	a := &API{cfg: Config{Now: func() time.Time { return at }}}
	reqs := make([]state.SeedRequest, 7)
	a.stampBatch(reqs)
	var made []string
	for i, r := range reqs {
		sd := r.Seed
		if sd.At != at.UnixMilli() {
			t.Errorf("task %d: at %d, want %d", i, sd.At, at.UnixMilli())
		}
		if len(sd.StepIDs) != len(taskIDPrefixes)-1 || cap(sd.StepIDs) != len(sd.StepIDs) {
			t.Fatalf("task %d: %d step ids (room for %d), want %d and no room", i, len(sd.StepIDs), cap(sd.StepIDs), len(taskIDPrefixes)-1)
		}
		checkID(t, sd.ID, "task_", at)
		for _, id := range sd.StepIDs {
			checkID(t, id, "step_", at)
		}
		made = append(append(made, sd.ID), sd.StepIDs...)
	}
	for i := 1; i < len(made); i++ {
		if made[i][5:] <= made[i-1][5:] {
			t.Fatalf("id %s made after %s sorts before it", made[i], made[i-1])
		}
	}
	_ = append(reqs[0].Seed.StepIDs, "step_x")
	if reqs[1].Seed.ID == "step_x" {
		t.Error("a task's step ids grew into the next task's id")
	}
}

func checkID(t *testing.T, id, prefix string, at time.Time) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest != strings.ToLower(rest) {
		t.Fatalf("id %q: want %s and a lowercase ULID", id, prefix)
	}
	u, err := ulid.ParseStrict(strings.ToUpper(rest))
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	if u.Time() != uint64(at.UnixMilli()) {
		t.Fatalf("id %q holds time %d, want %d", id, u.Time(), at.UnixMilli())
	}
}

// BenchmarkStamp: the ids and time of one task.
func BenchmarkStamp(b *testing.B) {
	a := &API{cfg: Config{Now: time.Now}}
	b.ReportAllocs()
	for b.Loop() {
		var sd state.Seed
		a.stamp(&sd)
	}
}
