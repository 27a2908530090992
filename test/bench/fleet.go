package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
)

// benchFleet runs many tasks through many simulated agents (goroutines of
// this process that take a set time per step) on a 3-node cluster, and
// measures the assignments per second the leader sustains, with its CPU and
// memory.
func benchFleet(ctx context.Context, e *env, c config, rep *report) error {
	// The servers run as in a 1 GiB container: ittybit would hold its heap
	// under 75% of the cgroup's limit; here there is no cgroup limit, so
	// the same soft limit is given directly.
	servers, err := startClusterEnv(ctx, e, "fleet", []string{"GOMEMLIMIT=768MiB"}, "--rate-limit", "0", "--pprof", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopAll(servers)
	leader, err := findLeader(servers)
	if err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: c.agents + 128, MaxIdleConns: c.agents + 128}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	caps := []encoders.Capability{}
	for _, codec := range encoders.VideoCodecs {
		caps = append(caps, encoders.Capability{Plugin: "software", Backend: encoders.BackendSoftware, Codec: codec, Available: true})
	}

	// Register the fleet.
	agent := client.New(leader.url, nodeToken, client.WithHTTPClient(hc), client.WithRetries(20))
	names := make([]string, c.agents)
	var regWG sync.WaitGroup
	regErr := make(chan error, 1)
	sem := make(chan struct{}, 64)
	for i := range names {
		names[i] = fmt.Sprintf("sim-%04d", i)
		regWG.Add(1)
		sem <- struct{}{}
		go func() {
			defer regWG.Done()
			defer func() { <-sem }()
			if _, err := agent.RegisterNode(ctx, api.NodeRegistration{Name: names[i], Slots: 2, Capabilities: caps}); err != nil {
				select {
				case regErr <- err:
				default:
				}
			}
		}()
	}
	regWG.Wait()
	select {
	case err := <-regErr:
		return fmt.Errorf("register: %w", err)
	default:
	}
	cpu0, _ := procStats(leader.cmd.Process.Pid)

	// The agents: long-poll, take stepTime per step, report.
	runCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	var assigned, tasksDone atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, name := range names {
		var mu sync.Mutex
		running := map[string]api.RunningStep{}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				mu.Lock()
				hb := api.Heartbeat{}
				for _, r := range running {
					hb.Running = append(hb.Running, r)
				}
				mu.Unlock()
				_, _ = agent.Heartbeat(runCtx, name, hb)
				select {
				case <-runCtx.Done():
				case <-time.After(5 * time.Second):
				}
			}
		}()
		go func() {
			defer wg.Done()
			out, _ := json.Marshal(encoders.File{Object: "file", Kind: "video", URL: "s3://bench/out.mp4"})
			for runCtx.Err() == nil {
				list, err := agent.Assignments(runCtx, name, 10*time.Second)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for _, a := range list {
					assigned.Add(1)
					mu.Lock()
					running[a.StepID] = api.RunningStep{StepID: a.StepID, Attempt: a.Attempt}
					mu.Unlock()
					go func() { // each slot works on its own
						time.Sleep(c.stepTime)
						r := api.StepReport{TaskID: a.TaskID, Attempt: a.Attempt, Outcome: api.OutcomeCompleted, Output: out}
						if err := agent.ReportStep(runCtx, a.StepID, r); err == nil && a.Step == api.StepUpload {
							tasksDone.Add(1)
						}
						mu.Lock()
						delete(running, a.StepID)
						mu.Unlock()
					}()
				}
			}
		}()
	}

	// A CPU profile of the leader while the fleet works.
	profDone := make(chan string, 1)
	go func() {
		top := profileTop(ctx, e, leader, 10*time.Second)
		if os.Getenv("BENCH_PROFILE") != "" {
			fmt.Fprint(os.Stderr, top)
		}
		profDone <- top
	}()

	// Submit the tasks from 64 clients.
	users := client.New(leader.url, apiKey, client.WithHTTPClient(hc), client.WithRetries(20))
	var next atomic.Int64
	var subWG sync.WaitGroup
	var subErr atomic.Value
	for i := 0; i < 64; i++ {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			for {
				k := next.Add(1)
				if k > int64(c.tasks) || ctx.Err() != nil {
					return
				}
				req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: fmt.Sprintf("https://example.com/fleet/%d.mov", k)}
				if _, err := users.Create(ctx, req, client.CreateOptions{}); err != nil {
					subErr.Store(err)
					return
				}
			}
		}()
	}
	subWG.Wait()
	submitted := time.Since(start)
	if err, _ := subErr.Load().(error); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(os.Stderr, "   %d tasks submitted in %s\n", c.tasks, submitted.Round(time.Millisecond))
	last, lastAt := int64(0), time.Now()
	for tasksDone.Load() < int64(c.tasks) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if n := tasksDone.Load(); n != last {
			last, lastAt = n, time.Now()
			fmt.Fprintf(os.Stderr, "   %s: %d assignments, %d tasks done\n", time.Since(start).Round(time.Second), assigned.Load(), n)
		} else if time.Since(lastAt) > time.Minute {
			fmt.Fprintf(os.Stderr, "%s", <-profDone)
			return fmt.Errorf("no task finished for a minute (%d of %d done)", n, c.tasks)
		}
	}
	drained := time.Since(start)
	cpu1, rss := procStats(leader.cmd.Process.Pid)
	anon, file := rssParts(leader.cmd.Process.Pid)
	heap := heapTop(ctx, e, leader)
	if os.Getenv("BENCH_PROFILE") != "" {
		fmt.Fprint(os.Stderr, heap)
	}
	stopAgents()
	wg.Wait()
	rate := float64(assigned.Load()) / drained.Seconds()
	cores := (cpu1 - cpu0) / drained.Seconds()
	s := &section{
		title: "4. Fleet scale",
		intro: fmt.Sprintf("A 3-node cluster of `ittybit server` processes; %d simulated agents (goroutines of the benchmark process using the agent routes "+
			"of the leader: register, heartbeat every 5 s, long-poll, report) with 2 slots each, taking %s per step; %d tasks submitted by 64 clients "+
			"(%d steps). The servers run with GOMEMLIMIT=768MiB, as they would in a 1 GiB container (ittybit sets 75%% of the cgroup's limit itself). Assignments per second = every step assigned, over the time from the first submission until the last task completed. "+
			"The anchor: Nomad's C1M placed 3,750 containers/s with 5 servers on large machines.", c.agents, c.stepTime, c.tasks, 4*c.tasks),
		header: []string{"figure", "value", "anchor"},
		rows: [][]string{
			{"tasks submitted in", submitted.Round(time.Millisecond).String(), ""},
			{"queue drained in", drained.Round(time.Millisecond).String(), ""},
			{"assignments / s", f0(rate), "Nomad C1M: 3,750 / s (5 servers)"},
			{"leader CPU", f2(cores) + " cores", ""},
			{"leader peak RSS", mib(rss), "≤ 1 GiB"},
			{"leader RSS at the end: anonymous / mapped files", mib(anon) + " / " + mib(file), ""},
		},
		target: "≥ 2,000 assignments / s, leader RSS ≤ 1 GiB",
		met:    verdict(rate >= 2000 && rss <= 1<<30),
	}
	s.notes = append(s.notes, "The leader's CPU profile over 10 s from the start of the run (`go tool pprof -top`):\n\n```\n"+<-profDone+"```")
	rep.add(s)
	return nil
}

// profileTop takes a CPU profile of a server and returns pprof's top
// entries.
func profileTop(ctx context.Context, e *env, p *proc, d time.Duration) string {
	addr, ok := logField(p.log, "serving pprof", "addr")
	if !ok {
		return "(no profiler address in the log)\n"
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return err.Error() + "\n"
	}
	defer resp.Body.Close()
	path := filepath.Join(e.dir, "leader.pprof")
	f, err := os.Create(path)
	if err != nil {
		return err.Error() + "\n"
	}
	_, _ = io.Copy(f, resp.Body)
	f.Close()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=20", e.bin, path).CombinedOutput()
	if err != nil {
		return string(out) + err.Error() + "\n"
	}
	return string(out)
}

// heapTop returns pprof's top entries of a server's live heap.
func heapTop(ctx context.Context, e *env, p *proc) string {
	addr, ok := logField(p.log, "serving pprof", "addr")
	if !ok {
		return "(no profiler address in the log)\n"
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err.Error() + "\n"
	}
	defer resp.Body.Close()
	path := filepath.Join(e.dir, "leader.heap")
	f, err := os.Create(path)
	if err != nil {
		return err.Error() + "\n"
	}
	_, _ = io.Copy(f, resp.Body)
	f.Close()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=15", "-sample_index=inuse_space", e.bin, path).CombinedOutput()
	if err != nil {
		return string(out) + err.Error() + "\n"
	}
	return string(out)
}

// findLeader returns the server that leads.
func findLeader(servers []*proc) (*proc, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(servers[0].url + "/readyz")
		if err != nil {
			continue
		}
		var r struct{ Leader string }
		_ = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		for i, name := range []string{"a", "b", "c"} {
			if r.Leader == name {
				return servers[i], nil
			}
		}
	}
	return nil, fmt.Errorf("no leader")
}
