package main

import (
	"testing"
	"time"
)

// The sample configs in configs/ decode with every field known, so they
// cannot drift from the code that reads them.
func TestSampleConfigs(t *testing.T) {
	var s serverFile
	if err := loadYAML("../../configs/server.yaml", &s); err != nil {
		t.Fatal(err)
	}
	var a agentFile
	if err := loadYAML("../../configs/agent.yaml", &a); err != nil {
		t.Fatal(err)
	}
	if s.NodeID == "" || s.Storage == "" {
		t.Errorf("server.yaml decoded to nothing: %+v", s)
	}
	if a.Slots != 2 || a.DrainTimeout != 30*time.Second || a.FetchIdleTimeout != time.Minute || len(a.Servers) != 3 {
		t.Errorf("agent.yaml decoded to %+v", a)
	}
}
