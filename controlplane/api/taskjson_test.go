package api

import (
	"encoding/json"
	"math"
	"math/rand"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// checkTaskJSON holds Task.AppendJSON to json.Marshal.
func checkTaskJSON(t *testing.T, task *Task) {
	t.Helper()
	want, werr := json.Marshal(task)
	got, err := task.AppendJSON(nil)
	if (err != nil) != (werr != nil) {
		t.Fatalf("AppendJSON error %v, json.Marshal %v", err, werr)
	}
	if werr == nil && string(got) != string(want) {
		t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
	}
}

// TestTaskAppendJSON: tasks new and in every later state, with strings
// to escape, raw JSON spaced out, times, progress of every magnitude,
// errors and parts, write what json.Marshal writes.
func TestTaskAppendJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	strs := []string{"", "video", "https://example.com/upload.mov", "a<b>&c", `q"uo\te`, "é ü 😀", "line\nbreak", "\u2028", "bad \xff utf8", "s3://bucket/key"}
	raws := []json.RawMessage{nil, {}, json.RawMessage("null"), json.RawMessage("{}"), json.RawMessage("[]"),
		json.RawMessage(`{ "a" : [1, 2] , "b":"<x>" }`), json.RawMessage(`{"url":"s3://b/k","bytes":12}`), json.RawMessage(`"é"`)}
	floats := []float64{0, 0.5, 1, 1e-7, 1.5e-9, 123456.789, 1e21, 1e20, -2.5e-7, math.SmallestNonzeroFloat64, math.MaxFloat64}
	str := func() string { return strs[rng.Intn(len(strs))] }
	raw := func() json.RawMessage { return raws[rng.Intn(len(raws))] }
	i64 := func() *int64 {
		if rng.Intn(2) == 0 {
			return nil
		}
		n := rng.Int63n(2_000_000_000_000)
		return &n
	}
	strp := func() *string {
		if rng.Intn(2) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	apiErr := func() *Error {
		if rng.Intn(3) > 0 {
			return nil
		}
		return &Error{Kind: ittybit.ErrInvalidOption, Field: str(), Message: str(), Errors: []*ittybit.Error{{Kind: ittybit.ErrInvalidInput, Message: str()}}}
	}
	for range 2000 {
		w := encoders.Dimension{Pixels: 1280}
		h := encoders.Dimension{Percent: 50}
		fps := floats[rng.Intn(len(floats))]
		task := &Task{ID: str(), Object: "task", Kind: encoders.Kind(str()), Input: str(), Output: strp(),
			Options:  encoders.Options{Format: str(), Quality: encoders.Quality(str()), Width: &w, Height: &h, FPS: &fps},
			Metadata: raw(), Status: TaskStatus(str()), Error: apiErr(), CreatedAt: rng.Int63(), StartedAt: i64(), FinishedAt: i64(),
			UpdatedAt: rng.Int63(), Project: str(), Priority: str(), Archived: rng.Intn(2) == 0}
		if rng.Intn(4) > 0 {
			task.Steps = []Step{}
			for range rng.Intn(5) {
				st := Step{ID: str(), Object: "step", Kind: str(), Input: raw(), Options: raw(), Output: raw(), Status: StepStatus(str()),
					Error: apiErr(), CreatedAt: rng.Int63(), StartedAt: i64(), FinishedAt: i64(), UpdatedAt: rng.Int63(), Node: strp(), Attempt: rng.Intn(9)}
				if rng.Intn(2) == 0 {
					p := floats[rng.Intn(len(floats))]
					st.Progress = &p
				}
				if rng.Intn(3) == 0 {
					st.Parts = []Part{{ID: str(), Object: "part", Kind: PartVideo, Start: 1.5, End: 3, Status: StepQueued, Node: strp()}}
				}
				task.Steps = append(task.Steps, st)
			}
		}
		checkTaskJSON(t, task)
	}
}

// FuzzTaskAppendJSON: any strings, raw JSON and numbers, valid or not.
func FuzzTaskAppendJSON(f *testing.F) {
	f.Add("task_1", "https://example.com/a.mov", []byte(`{"a":1}`), 0.25, int64(1_700_000_000_000))
	f.Add("<&>", "\xff", []byte(`{"a" : 1`), math.Inf(1), int64(-1))
	f.Add("\u2029", "", []byte(" null "), 1e-7, int64(0))
	f.Fuzz(func(t *testing.T, s, input string, raw []byte, progress float64, at int64) {
		task := &Task{ID: s, Object: "task", Kind: encoders.Kind(s), Input: input, Output: &s, Metadata: raw, Status: TaskQueued,
			CreatedAt: at, StartedAt: &at, UpdatedAt: at, Project: s,
			Steps: []Step{{ID: s, Object: "step", Kind: input, Input: raw, Options: json.RawMessage("{}"), Progress: &progress, Node: &input, CreatedAt: at}}}
		checkTaskJSON(t, task)
	})
}

// BenchmarkTaskJSON: a new task of the seed's request, as POST /tasks
// answers it.
func BenchmarkTaskJSON(b *testing.B) {
	w, h := encoders.Dimension{Pixels: 1280}, encoders.Dimension{Pixels: 720}
	task := &Task{ID: "task_01m8vc4xh4mezny65z7bj09tn1", Object: "task", Kind: encoders.KindVideo, Input: "https://example.com/upload.mov",
		Options: encoders.Options{Format: "mp4", Quality: "high", Width: &w, Height: &h}, Metadata: json.RawMessage("{}"), Status: TaskQueued,
		CreatedAt: 1796215043620, UpdatedAt: 1796215043620}
	for _, k := range StepKinds(task.Kind) {
		task.Steps = append(task.Steps, Step{ID: "step_01m8vc4xh4mezny65z7eg22csd", Object: "step", Kind: k, Options: json.RawMessage("{}"),
			Status: StepWaiting, CreatedAt: 1796215043620, UpdatedAt: 1796215043620})
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(task)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = task.AppendJSON(buf[:0])
		}
	})
}
