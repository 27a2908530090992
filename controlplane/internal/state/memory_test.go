package state

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

// liveHeap is the heap the last full GC found live.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkMemoryPerTask measures the live heap each finished task holds:
// ITTYBIT_MEM_TASKS tasks (default 100,000) created as the leader seeds
// them (with an Idempotency-Key each, still remembered), each step leased
// and completed with outputs like the fleet's; events are trimmed to the
// newest 50,000 as they come (--event-limit), and all of them at the end.
// `make bench` runs it at a million; ITTYBIT_MEM_PROFILE writes a heap
// profile.
func BenchmarkMemoryPerTask(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("ITTYBIT_MEM_TASKS")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		s := New()
		before := liveHeap()
		out, _ := json.Marshal(encoders.File{Object: "file", Kind: "video", URL: "s3://sim/out.mp4"})
		idx := uint64(10)
		const batch = 64
		for i := 0; i < n; i += batch {
			var reqs []CreateRequest
			for j := i; j < min(n, i+batch); j++ {
				id := fmt.Sprintf("task_%026d", j)
				var steps []string
				for k := range 4 {
					steps = append(steps, fmt.Sprintf("step_%024d%02d", j, k))
				}
				sd := SeedRequest{Seed: Seed{ID: id, StepIDs: steps, At: 1000, Kind: encoders.KindVideo, Input: fmt.Sprintf("https://example.com/fleet/bench-%d.mov", j)},
					Scope: "idem:admin", Key: fmt.Sprintf("bench-%d", j), BodyHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
				reqs = append(reqs, sd.Request())
			}
			idx++
			s.SetIndex(idx)
			s.CreateTasks(idx, 1000, reqs)
		}
		for k := range 4 {
			for i := 0; i < n; i += batch {
				var ups []StepUpdate
				for j := i; j < min(n, i+batch); j++ {
					id := fmt.Sprintf("task_%026d", j)
					step := fmt.Sprintf("step_%024d%02d", j, k)
					node := fmt.Sprintf("node-%d", j%1000)
					ups = append(ups, StepUpdate{Op: OpAssign, TaskID: id, StepID: step, Attempt: 1, Node: node, Now: 2000})
					ups = append(ups, StepUpdate{Op: OpComplete, TaskID: id, StepID: step, Attempt: 1, Node: node, Now: 3000, Output: out})
				}
				idx++
				s.SetIndex(idx)
				s.ApplyStepUpdates(ups)
				// As a leader with --event-limit 50000 keeps them.
				for s.EventCount() > 50000 {
					if s.TrimEvents(0, 50000) == 0 {
						break
					}
				}
			}
		}
		for s.TrimEvents(0, 1) > 0 { // events are bounded apart (--event-limit)
		}
		after := liveHeap()
		if s.CountTasks() != n {
			b.Fatalf("%d tasks, want %d", s.CountTasks(), n)
		}
		b.ReportMetric(float64(after-before)/float64(n), "live-B/task")
		if p := os.Getenv("ITTYBIT_MEM_PROFILE"); p != "" {
			f, _ := os.Create(p)
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		runtime.KeepAlive(s)
	}
}
