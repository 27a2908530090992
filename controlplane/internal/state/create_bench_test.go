package state

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

// BenchmarkCreateTasks measures what the state machine does per task as
// `POST /tasks` commits: batches of 20 created into a state that already
// holds 100,000 tasks, each with a request key as the servers make them
// (time first, then random). b.N counts tasks.
func BenchmarkCreateTasks(b *testing.B) {
	s := New()
	const batch = 20
	idx := uint64(10)
	seq := 0
	opts := []byte(`{"format":"mp4","height":720,"quality":"high","width":1280}`)
	next := func() []CreateRequest {
		reqs := make([]CreateRequest, 0, batch)
		for range batch {
			seq++
			var steps []string
			for k := range 4 {
				steps = append(steps, fmt.Sprintf("step_%024d%02d", seq, k))
			}
			var key [16]byte
			binary.BigEndian.PutUint64(key[:8], uint64(1_800_000_000_000+seq/20)<<16)
			_, _ = rand.Read(key[6:])
			sd := SeedRequest{Seed: Seed{ID: fmt.Sprintf("task_%026d", seq), StepIDs: steps, At: 1000, Kind: encoders.KindVideo,
				Input: "https://example.com/upload.mov", Options: opts},
				Scope: "req:", Key: hex.EncodeToString(key[:]), BodyHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
			reqs = append(reqs, sd.Request())
		}
		return reqs
	}
	for seq < 100000 {
		idx++
		s.SetIndex(idx)
		s.CreateTasks(idx, 1000, next())
	}
	var pending [][]CreateRequest
	for i := 0; i < b.N; i += batch {
		pending = append(pending, next())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, reqs := range pending {
		idx++
		s.SetIndex(idx)
		s.CreateTasks(idx, 1000, reqs)
	}
}
