package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
)

// BenchmarkDispatchLatency measures how long a step waits between becoming
// queued (the task's 201) and reaching an idle agent's long-poll, which is
// when it is processing. The agent here is a client that completes the
// probe at once and hands every other step back, so the fleet stays idle.
func BenchmarkDispatchLatency(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(Config{
		NodeID: "bench", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "bench"),
		Bootstrap: true, APIKeys: []string{testKey}, NodeTokens: []string{testToken},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second)
	for !s.Store().LeaderReady() || !s.Scheduler().Active() {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	users := client.New(s.URL(), testKey)
	agent := client.New(s.URL(), testToken)
	caps := []encoders.Capability{{Plugin: "software", Backend: encoders.BackendSoftware, Codec: "h264", Available: true}}
	if _, err := agent.RegisterNode(ctx, api.NodeRegistration{Name: "idle", Slots: 4, Capabilities: caps}); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := make(chan time.Time, 1)
		go func() {
			for {
				out, err := agent.Assignments(ctx, "idle", 5*time.Second, api.Received{})
				if err == nil && len(out.Assignments) > 0 {
					got <- time.Now()
					for _, a := range out.Assignments {
						_, _ = agent.ReportStep(ctx, a.StepID, api.StepReport{Attempt: a.Attempt, Outcome: api.OutcomeFailed,
							Error: &api.Error{Kind: "cancelled", Message: "benchmark"}, Retryable: false})
					}
					return
				}
			}
		}()
		start := time.Now()
		if _, err := users.Create(ctx, api.CreateTaskRequest{Kind: encoders.KindVideo, Input: fmt.Sprintf("https://example.com/%d.mov", i)}, client.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		at := <-got
		lat = append(lat, at.Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
