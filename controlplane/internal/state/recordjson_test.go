package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TestSnapshotAsMarshaled: the snapshot written with the records' JSON
// built by hand is byte for byte the one json.Marshal writes, over every
// kind of task the table holds (seeded, live with runs and parts, frozen),
// their events and request keys, with strings to escape.
func TestSnapshotAsMarshaled(t *testing.T) {
	s, _ := finishedTasks(t) // frozen tasks, parts, errors, a cancel
	s.SetIndex(20)
	s.CreateSeeds(20, 6000, []SeedRequest{
		{Seed: Seed{ID: "task_s1", StepIDs: []string{"step_s1a", "step_s1b", "step_s1c", "step_s1d"}, At: 6000, Kind: encoders.KindVideo,
			Input: "https://example.com/<a>&b.mov", Output: "s3://bucket/o.mp4", Options: json.RawMessage(`{"format":"mp4","width":1280}`),
			Metadata: json.RawMessage(`{"note":"<b>ünï</b>","n":[1,2.5]}`), Project: "p1", Priority: "high"},
			Scope: "idem:k1", Key: "ключ<&>\"\\\u2028", BodyHash: "h1"},
		{Seed: Seed{ID: "task_s2", StepIDs: []string{"step_s2a", "step_s2b", "step_s2c"}, At: 6001, Kind: encoders.KindAudio, Input: "https://example.com/a.wav"},
			Scope: "req:k1", Key: "r2", BodyHash: "h2"},
		{Seed: Seed{ID: "task_s3", At: 6002, Kind: encoders.KindImage, Input: "https://example.com/i.png"}, Scope: "req", Key: "r3"},
	})
	// A live task: a failure (its backoff), a release asking to be kept
	// away, then a step completed (its holder).
	mustCreate(t, s, 21, "live1")
	rec, _ := s.TaskRecord("live1")
	st := rec.Steps[0]
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "live1", StepID: st.ID, Attempt: 1, Node: "node-a", Now: 7000})
	mustApply(t, s, StepUpdate{Op: OpFail, TaskID: "live1", StepID: st.ID, Attempt: 1, Now: 7001, Retryable: true,
		Error: &api.Error{Kind: "invalid_media", Message: "no <moov>", Field: "input"}})
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "live1", StepID: st.ID, Attempt: 2, Node: "node-b", Now: 9000})
	mustApply(t, s, StepUpdate{Op: OpRelease, TaskID: "live1", StepID: st.ID, Attempt: 2, Now: 9001, Avoid: true})
	mustApply(t, s, StepUpdate{Op: OpAssign, TaskID: "live1", StepID: st.ID, Attempt: 3, Node: "node-c", Now: 9002})
	mustApply(t, s, StepUpdate{Op: OpComplete, TaskID: "live1", StepID: st.ID, Attempt: 3, Now: 9003, Output: json.RawMessage(`{"duration":3.5}`)})

	sn := s.Snapshot()
	var fast, want bytes.Buffer
	if _, err := sn.WriteTo(&fast); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.writeTo(&want, appendMarshaled); err != nil {
		t.Fatal(err)
	}
	got, exp := strings.Split(fast.String(), "\n"), strings.Split(want.String(), "\n")
	for i := range max(len(got), len(exp)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(exp) {
			w = exp[i]
		}
		if g != w {
			t.Errorf("line %d:\n%s\njson.Marshal writes:\n%s", i+1, g, w)
		}
	}
	// Every kind the hand-written JSON covers is in the snapshot.
	for _, part := range []string{`"runs":[{`, `"failures":1`, `"not_before":`, `"holder":"node-c"`, `"parts":[`, `{"cold":`,
		`"t":"events","d":{"seq":`, `"t":"requests"`, `"task_id":"task_s1"`, `"step":"`, `"attempt":`, `"priority":"high"`} {
		if !strings.Contains(fast.String(), part) {
			t.Errorf("no %s in the snapshot", part)
		}
	}
	if r := restored(t, s); r.Hash() != s.Hash() {
		t.Error("the snapshot restores to another state")
	}
	// The state's hash is what it was with a JSON encoder: equal across
	// releases (a rolling upgrade compares nodes by it).
	h := sha256.New()
	enc := json.NewEncoder(h)
	s.tasks.Load().each(func(raw any) bool {
		switch t := raw.(type) {
		case *coldTask:
			data, _ := t.json()
			_ = enc.Encode(t.Seq)
			h.Write(data)
			if t.CancelledBy != (RequestMark{}) {
				h.Write(t.CancelledBy[:])
			}
		case *Task:
			_ = enc.Encode(t)
		case *seededTask:
			_ = enc.Encode(t.task())
		}
		return true
	})
	if got, want := s.Hash(), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("Hash() = %s, with a JSON encoder %s", got, want)
	}
	// Every field of a run, parts within parts.
	runs := []StepRun{{Failures: 2, NotBefore: 5, ReadyAt: 6, Holder: "n<1>", Avoid: "ünï", Issued: 3,
		Parts: []StepRun{{Issued: 4}, {}, {Parts: []StepRun{{Failures: 1}}}}}, {}}
	if got, want := appendRuns(nil, runs), mustMarshal(t, runs); !bytes.Equal(got, want) {
		t.Errorf("runs:\n%s\njson.Marshal writes:\n%s", got, want)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
