package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// tuneGC lets the daemons' heaps grow to four times the live data between
// collections (Go's default is twice): a control plane holds its state in
// memory and allocates per request, and with the default a quarter of its
// CPU went to the garbage collector under load (see BENCHMARKS.md). In a
// container with a memory limit, the Go heap is also held under 75% of it,
// leaving the rest to goroutine stacks and the Raft log's mapped pages, so
// the extra room never costs an OOM kill. $GOGC and $GOMEMLIMIT, when set,
// decide instead.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if limit, ok := cgroupMemoryLimit(); ok {
			debug.SetMemoryLimit(limit / 4 * 3)
		}
	}
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
