package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/wire"
	"github.com/ittybit-oss/ittybit/encoders"
)

// randomRequests makes n seed requests with every field sometimes empty,
// sometimes an empty but non-nil slice, sometimes a slice with room past
// its end: the shapes a handler may hand the store.
func randomRequests(r *rand.Rand, n int) []state.SeedRequest {
	str := func() string {
		switch r.IntN(4) {
		case 0:
			return ""
		case 1:
			return "ünï-" + fmt.Sprint(r.Int64())
		default:
			return strings.Repeat("x", r.IntN(40)) + fmt.Sprint(r.IntN(1000))
		}
	}
	raw := func() json.RawMessage {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return json.RawMessage{}
		case 2:
			b := make([]byte, 0, 64) // room past the end
			return append(b, `{"width":1280}`...)
		default:
			return json.RawMessage(fmt.Sprintf(`{"n":%d}`, r.IntN(100)))
		}
	}
	kinds := []encoders.Kind{encoders.KindVideo, encoders.KindAudio, encoders.KindImage, ""}
	out := make([]state.SeedRequest, n)
	for i := range out {
		s := state.Seed{ID: str(), At: r.Int64N(1 << 50), Kind: kinds[r.IntN(len(kinds))], Input: str(), Output: str(),
			Options: raw(), Metadata: raw(), Project: str(), Priority: str()}
		switch r.IntN(3) {
		case 0:
		case 1:
			s.StepIDs = make([]string, 0, 8)
		default:
			for range 1 + r.IntN(5) {
				s.StepIDs = append(s.StepIDs, str())
			}
		}
		out[i] = state.SeedRequest{Seed: s, Scope: str(), Key: str(), BodyHash: str()}
	}
	return out
}

// TestProposalAsRead: the requests a leader applies from its own proposal
// are, value for value, what its followers read from the entry's bytes:
// nil where empty, and no slice with room to grow into what follows.
func TestProposalAsRead(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		reqs := randomRequests(r, 1+r.IntN(20))
		now := r.Int64N(1 << 50)
		data := wire.AppendBatch([]byte{byte(cmdCreateBatch)}, now, reqs)
		p := proposalOf(data, now, slices.Clone(reqs))
		gotNow, read, err := wire.ReadBatch(data[1:])
		if err != nil {
			t.Fatal(err)
		}
		if p.now != gotNow {
			t.Fatalf("round %d: now %d, read %d", round, p.now, gotNow)
		}
		// reflect.DeepEqual, unlike cmp's options, tells nil from empty.
		if !reflect.DeepEqual(p.reqs, read) {
			t.Fatalf("round %d: the proposal's requests differ from those read (-proposed +read):\n%s", round, cmp.Diff(p.reqs, read))
		}
		for i, q := range p.reqs {
			s := &q.Seed
			if cap(s.StepIDs) != len(s.StepIDs) || cap(s.Options) != len(s.Options) || cap(s.Metadata) != len(s.Metadata) {
				t.Fatalf("round %d, request %d: a slice has room past its end", round, i)
			}
		}
	}
}

// TestProposalApplied: the state machine applies its own proposal's
// requests when the entry is that proposal's bytes, and decodes any other
// entry, even one with the same bytes elsewhere in memory. The proposal
// here deliberately says something else than its bytes, to tell the two
// paths apart.
func TestProposalApplied(t *testing.T) {
	seed := func(id string) state.SeedRequest {
		return state.SeedRequest{Seed: state.Seed{ID: id, StepIDs: []string{id + "-1", id + "-2", id + "-3", id + "-4"}, At: 7,
			Kind: encoders.KindVideo, Input: "https://example.com/" + id}, Scope: "req", Key: id, BodyHash: "h"}
	}
	encoded := []state.SeedRequest{seed("task_encoded")}
	data := wire.AppendBatch([]byte{byte(cmdCreateBatch)}, 7, encoded)

	f := &fsm{state: state.New()}
	f.proposed.Store(proposalOf(data, 7, []state.SeedRequest{seed("task_proposed")}))
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
	if _, err := f.state.Task("task_proposed"); err != nil {
		t.Errorf("the proposal's own entry was not applied from the proposal: %v", err)
	}
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: slices.Clone(data)})
	if _, err := f.state.Task("task_encoded"); err != nil {
		t.Errorf("a copy of the entry was not decoded: %v", err)
	}
}
