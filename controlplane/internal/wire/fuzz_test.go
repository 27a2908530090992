package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// FuzzReadBatch: any bytes as a create entry or a follower's batch. Every
// node applies a create entry, so a message that panicked the reader
// would stop the whole cluster at once; and a batch comes over the
// network. What is read must be what its own form reads back as, and
// must own its memory (the log's buffers are reused).
func FuzzReadBatch(f *testing.F) {
	f.Add(AppendBatch(nil, 0, nil))
	f.Add(AppendBatch(nil, 1_700_000_000_999, seeds()))
	f.Add(AppendBatch(nil, -1, seeds()[1:]))
	withUnknown := AppendBatch(nil, 5, seeds()[:1])
	withUnknown = protowire.AppendTag(withUnknown, 98, protowire.Fixed64Type)
	withUnknown = protowire.AppendFixed64(withUnknown, 7)
	f.Add(withUnknown)
	f.Add([]byte{Version, 0x12, 0x02, 0x08, 0x01}) // a request whose id is a varint
	f.Add([]byte{Version + 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		now, reqs, err := ReadBatch(data)
		if err != nil {
			if len(data) > 0 && (data[0] == 0 || data[0] > Version) && !errors.Is(err, ErrNewer) {
				t.Fatalf("version %d: %v, want ErrNewer", data[0], err)
			}
			return
		}
		form := AppendBatch(nil, now, reqs)
		now2, reqs2, err := ReadBatch(form)
		if err != nil {
			t.Fatalf("its own form is refused: %v", err)
		}
		if now2 != now {
			t.Fatalf("now %d read back as %d", now, now2)
		}
		if diff := cmp.Diff(reqs, reqs2); diff != "" {
			t.Fatalf("read back (-first +again):\n%s", diff)
		}
		for i := range data {
			data[i] ^= 0xff
		}
		if again := AppendBatch(nil, now, reqs); !bytes.Equal(again, form) {
			t.Fatal("what was read changed with the message it was read from")
		}
		for _, r := range reqs {
			if len(r.Seed.Options) > 0 && cap(r.Seed.Options) != len(r.Seed.Options) {
				t.Fatalf("options %q have room after them (%d of %d): appending to them writes over what follows",
					r.Seed.Options, len(r.Seed.Options), cap(r.Seed.Options))
			}
		}
	})
}

// FuzzReadResults: any bytes as the leader's answer to a follower's batch.
func FuzzReadResults(f *testing.F) {
	f.Add(AppendResults(nil, nil))
	f.Add(AppendResults(nil, []Result{
		{Status: Created, ID: "task_1", StepIDs: []string{"step_1", "step_2"}, At: 17},
		{Status: Replayed, Task: []byte(`{"id":"task_0"}`)},
		{Status: Conflict},
	}))
	f.Add(AppendResults(nil, []Result{{Status: Conflict + 1}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ReadResults(data)
		if err != nil {
			return
		}
		for i, r := range out {
			if r.Status > Conflict {
				t.Fatalf("result %d: status %d read", i, r.Status)
			}
		}
		again, err := ReadResults(AppendResults(nil, out))
		if err != nil {
			t.Fatalf("its own form is refused: %v", err)
		}
		if diff := cmp.Diff(out, again); diff != "" {
			t.Fatalf("read back (-first +again):\n%s", diff)
		}
	})
}

// The seeds above are built by the code under test; this one is written
// out by hand, so a change of the form shows here first.
func TestBatchForm(t *testing.T) {
	b := AppendBatch(nil, 300, []state.SeedRequest{{Seed: state.Seed{ID: "t", At: 2}, Key: "k"}})
	want := []byte{Version,
		0x08, 0xac, 0x02, // now: 300
		0x12, 0x08, // request, 8 bytes
		0x0a, 0x01, 't', // id
		0x18, 0x02, // at: 2
		0x52, 0x01, 'k', // key (field 10)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("form % x, want % x", b, want)
	}
}
