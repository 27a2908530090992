package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestSchedulerFollowsTheLog: the leader's scheduler hears of writes as
// they are applied, whichever node took them and whichever leader
// proposed them. A task created through a follower is queued on the
// leader at once (its probe reaches the agent's long-poll), and a task
// cancelled while leadership moves is off the queue of the new leader as
// soon as the cancel applies there, with no rebuild in between.
func TestSchedulerFollowsTheLog(t *testing.T) {
	dir := t.TempDir()
	a := mustServer(t, dir, "a", true)
	defer a.Close()
	wait.Until(t, "a to lead", 20*time.Second, a.Store().LeaderReady)
	b := mustServer(t, dir, "b", false, a.URL())
	defer b.Close()
	c := mustServer(t, dir, "c", false, a.URL())
	defer c.Close()
	servers := []*Server{a, b, c}
	wait.Until(t, "three voters", 20*time.Second, func() bool { p, _ := a.Store().Peers(); return len(p) == 3 })
	ctx := context.Background()

	// One agent with one slot, through a follower.
	nodes := client.New(c.URL(), testToken)
	caps := []encoders.Capability{{Plugin: "software", Backend: encoders.BackendSoftware, Codec: "h264", Available: true}}
	if _, err := nodes.RegisterNode(ctx, api.NodeRegistration{Name: "n", Slots: 1, Capabilities: caps}); err != nil {
		t.Fatal(err)
	}
	users := client.New(b.URL(), testKey)
	first, err := users.Create(ctx, api.CreateTaskRequest{Kind: encoders.KindVideo, Input: "https://example.com/first.mov"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Long-polls of 5 s until it comes: a busy CI host (the race
	// detector, other packages' ffmpeg) has kept one waiting that long.
	var got api.Assignments
	for try := 0; try < 6 && err == nil && len(got.Assignments) == 0; try++ {
		got, err = nodes.Assignments(ctx, "n", 5*time.Second, api.Received{})
	}
	if err != nil || len(got.Assignments) != 1 || got.Assignments[0].TaskID != first.ID {
		t.Fatalf("the first task's probe did not reach the agent: %+v %v", got, err)
	}

	// A second task waits (the agent's one slot is taken); it is cancelled
	// while the leader hands leadership over.
	second, err := users.Create(ctx, api.CreateTaskRequest{Kind: encoders.KindVideo, Input: "https://example.com/second.mov"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := leaderOf(t, servers)
	if n := queued(t, old); n != 1 {
		t.Fatalf("the leader queues %d probes, want the second task's", n)
	}
	handedOff := make(chan error, 1)
	go func() { _, err := old.Store().HandOff(); handedOff <- err }()
	wait.For(t, "the cancel", 20*time.Second, func() error {
		code, body := do(t, http.MethodPost, c.URL()+"/tasks/"+second.ID+"/cancel", "")
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if err := <-handedOff; err != nil {
		t.Fatal(err)
	}
	wait.Until(t, "a new leader", 20*time.Second, func() bool { l := leaderOf(t, servers); return l != nil && l != old })
	now := leaderOf(t, servers)
	wait.Until(t, "the cancel to reach the new leader's queue", 5*time.Second, func() bool { return queued(t, now) == 0 })

	// The first task's probe completes: its ingest comes next, never the
	// cancelled task's probe.
	probe := got.Assignments[0]
	if _, err := nodes.ReportStep(ctx, probe.StepID, api.StepReport{TaskID: first.ID, Attempt: probe.Attempt, Outcome: api.OutcomeCompleted,
		Output: json.RawMessage(`{"duration":2,"width":320,"height":240,"has_video":true,"codecs":{"video":"h264"},"format":"mov"}`)}); err != nil {
		t.Fatal(err)
	}
	next, err := nodes.Assignments(ctx, "n", 5*time.Second, api.Received{Epoch: got.Epoch, Seq: probe.Seq})
	if err != nil || len(next.Assignments) != 1 || next.Assignments[0].TaskID != first.ID || next.Assignments[0].Step != api.StepIngest {
		t.Fatalf("after the probe: %+v %v, want the first task's ingest", next, err)
	}
}

// leaderOf returns the server that leads and has its working state.
func leaderOf(t *testing.T, servers []*Server) *Server {
	t.Helper()
	for _, s := range servers {
		if s.Store().LeaderReady() && s.Scheduler().Active() {
			return s
		}
	}
	return nil
}

// queued is the leader's queue depth of probe steps, from its metrics.
func queued(t *testing.T, s *Server) int {
	t.Helper()
	families, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "ittybit_queue_depth" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "step_kind" && l.GetValue() == api.StepProbe {
					return int(m.GetGauge().GetValue())
				}
			}
		}
	}
	return -1
}
