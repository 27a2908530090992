package server

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestGoCollectorLiveHeap(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(GoCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "go_gc_heap_live_bytes" {
			t.Logf("%s %v", mf.GetName(), mf.GetMetric()[0].GetGauge().GetValue())
			return
		}
	}
	t.Error("no go_gc_heap_live_bytes")
}
