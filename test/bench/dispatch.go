package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
)

// benchDispatch measures how long a step waits for an idle agent: from the
// moment it becomes queued (its task's 201, or the report that completed
// the step before it) to the moment the agent's long-poll returns it.
func benchDispatch(ctx context.Context, e *env, c config, rep *report) error {
	srv, err := e.start(ctx, "dispatch", nil, "server", "--node-id", "d", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0",
		"--data", filepath.Join(e.dir, "dispatch"), "--bootstrap", "--rate-limit", "0")
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := srv.waitReady(ctx); err != nil {
		return err
	}
	users, agent := client.New(srv.url, apiKey), client.New(srv.url, nodeToken)
	caps := []encoders.Capability{{Plugin: "software", Backend: encoders.BackendSoftware, Codec: "h264", Available: true}}
	if _, err := agent.RegisterNode(ctx, api.NodeRegistration{Name: "idle", Slots: 2, Capabilities: caps}); err != nil {
		return err
	}
	// The agent's heartbeats keep it alive while it polls.
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go func() {
		for hbCtx.Err() == nil {
			_, _ = agent.Heartbeat(hbCtx, "idle", api.Heartbeat{})
			time.Sleep(time.Second)
		}
	}()
	var rcv api.Received // acknowledged on each poll, as ittybit agent does
	poll := func() (api.Assignment, time.Time, error) {
		for {
			out, err := agent.Assignments(ctx, "idle", 10*time.Second, rcv)
			if err != nil {
				return api.Assignment{}, time.Time{}, err
			}
			rcv.Epoch = out.Epoch
			for _, a := range out.Assignments {
				rcv.Seq = max(rcv.Seq, a.Seq)
			}
			if len(out.Assignments) > 0 {
				return out.Assignments[0], time.Now(), nil
			}
		}
	}
	var first, next []float64
	tasks := max(c.dispatchN/4, 1)
	for i := 0; i < tasks; i++ {
		start := time.Now()
		if _, err := users.Create(ctx, api.CreateTaskRequest{Kind: encoders.KindVideo, Input: fmt.Sprintf("https://example.com/%d.mov", i)}, client.CreateOptions{}); err != nil {
			return err
		}
		a, at, err := poll()
		if err != nil {
			return err
		}
		first = append(first, float64(at.Sub(start).Microseconds())/1000)
		for step := 0; step < 4; step++ {
			rep := api.StepReport{TaskID: a.TaskID, Attempt: a.Attempt, Outcome: api.OutcomeCompleted, Output: []byte(`{"object":"file","url":"s3://bench/out.mp4"}`)}
			reported := time.Now()
			if _, err := agent.ReportStep(ctx, a.StepID, rep); err != nil {
				return err
			}
			if step == 3 {
				break
			}
			if a, at, err = poll(); err != nil {
				return err
			}
			next = append(next, float64(at.Sub(reported).Microseconds())/1000)
		}
	}
	all := append(append([]float64{}, first...), next...)
	fmt.Fprintf(os.Stderr, "   %d steps: p50 %.1f ms, p99 %.1f ms\n", len(all), quantile(all, 0.5), quantile(all, 0.99))
	s := &section{
		title: "3. Dispatch latency",
		intro: fmt.Sprintf("One `ittybit server` and one idle agent (a client of the agent routes, long-polling). %d tasks, each run through its four steps: "+
			"a step becomes queued when its task is answered 201 (first step) or when the report completing the step before it is answered; "+
			"it is processing when the agent's long-poll returns it. The time between is what a step waits on an idle fleet, the commit of its lease included.", tasks),
		header: []string{"steps", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"},
		rows: [][]string{
			{"first step (after the 201)", fmt.Sprint(len(first)), f1(quantile(first, 0.5)), f1(quantile(first, 0.9)), f1(quantile(first, 0.99)), f1(quantile(first, 1))},
			{"next steps (after the report)", fmt.Sprint(len(next)), f1(quantile(next, 0.5)), f1(quantile(next, 0.9)), f1(quantile(next, 0.99)), f1(quantile(next, 1))},
			{"all", fmt.Sprint(len(all)), f1(quantile(all, 0.5)), f1(quantile(all, 0.9)), f1(quantile(all, 0.99)), f1(quantile(all, 1))},
		},
		target: "p99 ≤ 50 ms",
		met:    verdict(quantile(all, 0.99) <= 50),
	}
	rep.add(s)
	return nil
}
