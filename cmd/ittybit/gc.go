package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// tuneGC sets how far the daemons' heaps grow between collections. Go's
// default lets the heap double. A control plane holds its state in memory
// and allocates per request: with the default a quarter of its CPU went to
// the collector under load (BENCHMARKS.md), so the heap may grow to four
// times the live data. In a container with a memory limit, the Go heap is
// held under 75% of it (leaving the rest to goroutine stacks and the Raft
// log's mapped pages): the operator gave it that memory, and using it
// means fewer collections. Without a limit, a server holding a million
// tasks must not hold four times their memory: past 32 MiB of live data
// the room is twice the live data (GOGC=200; gcPercent), re-read every
// few seconds. Every collection marks the whole backlog, so the room
// sets the collector's CPU per create: half the live data cost the
// leader a third more CPU per create than the live data (a queue of
// 100,000 tasks, BENCHMARKS.md section 2) for 2.4 against 2.9 KiB of RSS
// per finished task (section 10), and twice the live data took another
// 4 µs a create off the leader's 60 to 80 (windows side by side) for
// the memory section 10 shows. $GOGC and $GOMEMLIMIT, when set, decide
// instead.
func tuneGC() {
	limited := os.Getenv("GOMEMLIMIT") != ""
	if !limited {
		if limit, ok := cgroupMemoryLimit(); ok {
			debug.SetMemoryLimit(limit / 4 * 3)
			limited = true
		}
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent(0))
		if !limited {
			go followLiveHeap()
		}
	}
}

// gcRoom is the least room the heap gets to grow in beyond the live data.
const gcRoom = 64 << 20

// gcPercent is the GC percentage for live bytes of live data: room for
// 64 MiB or twice the live data, whichever is more, and at most three
// times the live data.
func gcPercent(live uint64) int {
	if live == 0 {
		return 300
	}
	pct := 100 * max(gcRoom, 2*live) / live
	return int(min(pct, 300))
}

// followLiveHeap sets the GC percentage from the live heap the last
// collection found, every 2 seconds, for the life of the process. When
// the live heap has fallen far from its peak (finished tasks retired, a
// burst cancelled), it hands the freed memory back to the system at once.
func followLiveHeap() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := gcPercent(0)
	peak := uint64(0)
	for range time.Tick(2 * time.Second) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := sample[0].Value.Uint64()
		if pct := gcPercent(live); pct != last {
			debug.SetGCPercent(pct)
			last = pct
		}
		peak = max(peak, live)
		if fallen(peak, live) {
			debug.FreeOSMemory()
			peak = live
		}
	}
}

// fallen reports whether the live heap has fallen from peak to live by
// enough to return what it freed to the system now: a quarter of it, and
// at least 64 MiB. The runtime returns freed memory a little at a time
// by itself, and keeps some of it for good (measured: 32 MiB of 330 MiB
// freed, two minutes after 100,000 tasks were cancelled).
func fallen(peak, live uint64) bool {
	return peak-live >= gcRoom && live < peak/4*3
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup (v2).
func cgroupMemoryLimit() (int64, bool) {
	data, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n <= 0 { // "max": no limit
		return 0, false
	}
	return n, true
}
