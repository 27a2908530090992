package main

import (
	"os"
	"runtime/debug"
)

// tuneGC lets the daemons' heaps grow to four times the live data between
// collections (Go's default is twice): a control plane holds its state in
// memory and allocates per request, and with the default a quarter of its
// CPU went to the garbage collector under load (see BENCHMARKS.md).
// $GOGC and $GOMEMLIMIT, when set, decide instead.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
}
