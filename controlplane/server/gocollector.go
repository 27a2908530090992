package server

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// GoCollector is the Go runtime's collector with the live heap added:
// go_gc_heap_live_bytes, what the last collection found reachable, the
// figure memory per task is measured by (the heap's size also counts the
// garbage not yet collected).
func GoCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)},
	))
}
