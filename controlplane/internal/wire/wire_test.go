package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

func seeds() []state.SeedRequest {
	return []state.SeedRequest{
		{Seed: state.Seed{ID: "task_01", StepIDs: []string{"step_1", "step_2", "step_3", "step_4"}, At: 1_700_000_000_123,
			Kind: encoders.KindVideo, Input: "https://example.com/ünï.mov", Output: "s3://bucket/out.mp4",
			Options: json.RawMessage(`{"width":1280,"format":"mp4"}`), Metadata: json.RawMessage(`{"n":[1,2]}`)},
			Scope: "idem:k1", Key: "order-1", BodyHash: "abc"},
		{Seed: state.Seed{Kind: encoders.KindImage, Input: "https://example.com/a.png", Project: "proj_1"}, Scope: "req:k1", Key: "r2"},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	for _, now := range []int64{0, 1_700_000_000_999} {
		b := AppendBatch([]byte{14}, now, seeds())
		gotNow, got, err := ReadBatch(b[1:])
		if err != nil {
			t.Fatal(err)
		}
		if gotNow != now {
			t.Errorf("now %d, want %d", gotNow, now)
		}
		if diff := cmp.Diff(seeds(), got); diff != "" {
			t.Errorf("(-sent +read):\n%s", diff)
		}
	}
}

func TestResultsRoundTrip(t *testing.T) {
	in := []Result{
		{Status: Created, ID: "task_1", StepIDs: []string{"step_1", "step_2"}, At: 17},
		{Status: Replayed, Task: []byte(`{"id":"task_0"}`)},
		{Status: Conflict},
	}
	got, err := ReadResults(AppendResults(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("(-sent +read):\n%s", diff)
	}
}

// A later release may add fields: this one skips them and reads the rest.
func TestUnknownFieldsSkipped(t *testing.T) {
	b := AppendBatch(nil, 5, seeds()[:1])
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 98, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	b = protowire.AppendTag(b, 97, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("later"))
	_, got, err := ReadBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seeds()[:1], got); diff != "" {
		t.Errorf("(-sent +read):\n%s", diff)
	}
}

func TestRefused(t *testing.T) {
	good := AppendBatch(nil, 5, seeds())
	newer := append([]byte{Version + 1}, good[1:]...)
	if _, _, err := ReadBatch(newer); !errors.Is(err, ErrNewer) {
		t.Errorf("a newer version: %v, want ErrNewer", err)
	}
	if _, err := ReadResults(newer); !errors.Is(err, ErrNewer) {
		t.Errorf("newer results: %v, want ErrNewer", err)
	}
	if _, _, err := ReadBatch(nil); err == nil {
		t.Error("an empty message was read")
	}
	for _, cut := range []int{len(good) - 1, len(good) / 2, 4} {
		if _, _, err := ReadBatch(good[:cut]); err == nil {
			t.Errorf("a batch cut to %d of %d bytes was read", cut, len(good))
		}
	}
	unknown := AppendResults(nil, []Result{{Status: 9}})
	if _, err := ReadResults(unknown); !errors.Is(err, ErrNewer) {
		t.Errorf("an unknown status: %v, want ErrNewer", err)
	}
}

// What ReadBatch returns owns its memory: the message may be reused (the
// Raft log's buffers are), and growing one task's options writes over
// nothing else.
func TestReadBatchCopies(t *testing.T) {
	b := AppendBatch(nil, 5, seeds())
	_, got, err := ReadBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	got[0].Seed.Options = append(got[0].Seed.Options, "tail"...)
	want := seeds()
	want[0].Seed.Options = append(want[0].Seed.Options, "tail"...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-sent +read):\n%s", diff)
	}
}

// BenchmarkReadBatch: a create entry of 16 tasks, read as every node
// applies it.
func BenchmarkReadBatch(b *testing.B) {
	var reqs []state.SeedRequest
	for range 8 {
		reqs = append(reqs, seeds()...)
	}
	msg := AppendBatch(nil, 5, reqs)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadBatch(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendResults measures a leader's answer to a follower's batch
// of 16 creates.
func BenchmarkAppendResults(b *testing.B) {
	results := make([]Result, 16)
	for i := range results {
		results[i] = Result{ID: fmt.Sprintf("task_%026d", i), At: 1_800_000_000_000,
			StepIDs: []string{fmt.Sprintf("step_%026d", 4*i), fmt.Sprintf("step_%026d", 4*i+1), fmt.Sprintf("step_%026d", 4*i+2), fmt.Sprintf("step_%026d", 4*i+3)}}
	}
	b.ReportAllocs()
	for b.Loop() {
		AppendResults(nil, results)
	}
}
