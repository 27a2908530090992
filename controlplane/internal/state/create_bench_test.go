package state

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

// BenchmarkCreateTasks measures what the state machine does per task as
// `POST /tasks` commits: batches of 20 created from their seeds into a
// state that already holds 100,000 tasks, each with a request key as the
// servers make them (time first, then random). b.N counts tasks. "seeds"
// is the state machine's way (CreateSeeds: each task kept as its seed);
// "whole" builds each task from its seed and stores it whole
// (CreateTasks), as the state machine did before.
func BenchmarkCreateTasks(b *testing.B) {
	for _, way := range []string{"seeds", "whole"} {
		b.Run(way, func(b *testing.B) {
			s := New()
			create := func(idx uint64, reqs []SeedRequest) {
				s.SetIndex(idx)
				if way == "seeds" {
					s.CreateSeeds(idx, 1000, reqs)
					return
				}
				whole := make([]CreateRequest, len(reqs))
				for i, r := range reqs {
					whole[i] = r.Request()
				}
				s.CreateTasks(idx, 1000, whole)
			}
			const batch = 20
			idx := uint64(10)
			seq := 0
			opts := []byte(`{"format":"mp4","height":720,"quality":"high","width":1280}`)
			next := func() []SeedRequest {
				reqs := make([]SeedRequest, 0, batch)
				for range batch {
					seq++
					var steps []string
					for k := range 4 {
						steps = append(steps, fmt.Sprintf("step_%024d%02d", seq, k))
					}
					var key [16]byte
					binary.BigEndian.PutUint64(key[:8], uint64(1_800_000_000_000+seq/20)<<16)
					_, _ = rand.Read(key[6:])
					reqs = append(reqs, SeedRequest{Seed: Seed{ID: fmt.Sprintf("task_%026d", seq), StepIDs: steps, At: 1000, Kind: encoders.KindVideo,
						Input: "https://example.com/upload.mov", Options: opts},
						Scope: "req:", Key: hex.EncodeToString(key[:]), BodyHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
				}
				return reqs
			}
			for seq < 100000 {
				idx++
				create(idx, next())
			}
			var pending [][]SeedRequest
			for i := 0; i < b.N; i += batch {
				pending = append(pending, next())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, reqs := range pending {
				idx++
				create(idx, reqs)
			}
		})
	}
}

// BenchmarkStepUpdate measures one step's lease as its own entry, on a
// task picked at random among 100,000 (or b.N, if more) queued ones: the
// fleet's entries are often that small, and each copies the path to its
// task anew. b.N counts entries.
func BenchmarkStepUpdate(b *testing.B) {
	s := New()
	n := max(100000, b.N)
	idx := uint64(10)
	for i := 0; i < n; i += 64 {
		var reqs []SeedRequest
		for j := i; j < min(n, i+64); j++ {
			reqs = append(reqs, SeedRequest{Seed: Seed{ID: fmt.Sprintf("task_%026d", j), StepIDs: []string{fmt.Sprintf("step_%024d00", j), fmt.Sprintf("step_%024d01", j)},
				At: 1000, Kind: encoders.KindAudio, Input: "https://example.com/a.mov"}, Scope: "req", Key: fmt.Sprintf("k%d", j), BodyHash: "h"})
		}
		idx++
		s.SetIndex(idx)
		s.CreateSeeds(idx, 1000, reqs)
	}
	order := mathrand.New(mathrand.NewPCG(1, 2)).Perm(n)
	ups := make([][]StepUpdate, b.N)
	for i := range ups {
		j := order[i]
		ups[i] = []StepUpdate{{Op: OpAssign, TaskID: fmt.Sprintf("task_%026d", j), StepID: fmt.Sprintf("step_%024d00", j), Attempt: 1, Node: "node-1", Now: 2000}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range ups {
		idx++
		s.SetIndex(idx)
		if r := s.ApplyStepUpdates(ups[i]); r[0].Err != "" {
			b.Fatalf("update: %s", r[0].Err)
		}
	}
}
