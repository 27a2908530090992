package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/test/fleetsim"
)

// fleetClients is how many clients submit the fleet's tasks.
const fleetClients = 64

// fleetRun is what one run of the fleet benchmark measured.
type fleetRun struct {
	submitted, drained time.Duration
	// noFleet are the creates/s of a cluster with no fleet, in the
	// windows before, between and after the windows of connected (the
	// creates/s with the fleet connected, idle); ratio is the median over
	// the connected windows of each's rate against the mean of the two
	// no-fleet windows beside it.
	noFleet, connected []float64
	ratio              float64
	baseline           float64 // the mean of noFleet
	connectedRate      float64 // the mean of connected
	workingRate        float64 // creates/s with the fleet at work
	assignRate         float64 // assignments/s, first submission to last completion
	idleCores          float64 // leader CPU with the fleet idle
	cores              float64 // leader CPU over the run
	peakRSS            int64
	anon, file         int64 // RSS at the end: anonymous, mapped files
	released           int64 // steps released and run again
	profile            string
}

// benchFleet runs many tasks through a simulated fleet (package fleetsim:
// goroutines of this process speaking the agent routes) on a 3-node
// cluster, c.fleetRuns times, each on a fresh cluster, and compares the
// create rate with the fleet at work against the create rate of a
// cluster with no fleet, measured just before the connected window and
// again just after it: the machine drifts, within a run as from run to
// run (each leaves a gigabyte of files behind), and the mean of the two
// takes a steady drift out.
func benchFleet(ctx context.Context, e *env, c config, rep *report) error {
	restore, err := pinFleet(c.fleetPin)
	if err != nil {
		return err
	}
	defer restore()
	var runs []fleetRun
	for i := range c.fleetRuns {
		r, err := fleetRunAlternated(ctx, e, c, i)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "   run %d: %.0f assignments/s; creates/s with the fleet connected %s (%.2f × none, whose windows were %s), %.0f with it at work (%.2f × none); leader %.2f cores (%.3f idle), peak RSS %s (at the end %s anonymous, %s files)\n",
			i+1, r.assignRate, perSecond(r.connected), r.ratio, perSecond(r.noFleet), r.workingRate, r.workingRate/r.baseline, r.cores, r.idleCores, mib(r.peakRSS), mib(r.anon), mib(r.file))
		runs = append(runs, r)
	}
	s := &section{
		title: "4. Fleet scale",
		intro: fmt.Sprintf("A 3-node cluster of `ittybit server` processes; %d simulated agents (package `test/fleetsim`: goroutines of the benchmark process "+
			"speaking the agent routes as `ittybit agent` does: register, heartbeat at the leader's interval, long-poll, acknowledge, report) with 2 slots each, "+
			"taking %s per step; %d tasks submitted by %d clients to the leader (%d steps). Each run starts a fresh cluster; the servers run with "+
			"GOMEMLIMIT=768MiB, as they would in a 1 GiB container (ittybit sets 75%% of the cgroup's limit itself). In each run: the fleet connects and "+
			"drains (connected, heartbeats and long-polls, no work); *idle* is the leader's CPU over 10 s then; *connected* is the rate of 201s "+
			"of creates beside it, in %d windows of %s (each ends early at a sixth of the run's tasks); then the fleet takes work and the rest of the tasks are submitted while it works them (*at work*). "+
			"Both are against the creates/s of a cluster with no fleet (*no fleet*: the same %d clients, on a fresh cluster started beside the run's, "+
			"in windows of the same length before, between and after the connected ones: the machine's speed swings by a fifth or more within a "+
			"minute). *× no fleet* for connected is the median over its windows of each's rate against the mean of the two no-fleet windows beside it; "+
			"for at work, against the mean of every no-fleet window. The tables show the means of the windows. *Assignments/s* counts every step "+
			"assigned over the time from the first create until the last task completed (the %s of connected creates included). "+
			"The anchor: Nomad's C1M placed 3,750 containers/s with 5 servers on large machines.",
			c.agents, c.stepTime, c.tasks, fleetClients, 4*c.tasks, fleetPairs, c.window/2, fleetClients, c.window/2*fleetPairs),
		header: []string{"run", "leader CPU idle", "creates/s no fleet", "creates/s connected", "× no fleet", "creates/s at work", "× no fleet", "drained in", "assignments/s",
			"leader CPU", "leader peak RSS", "steps run again"},
		target: "every run: every task completes; ≥ 2,000 assignments/s; leader RSS ≤ 1 GiB; idle leader ≤ 0.1 cores; creates/s with the fleet connected ≥ 0.7 × none",
	}
	ok := true
	for i, r := range runs {
		s.rows = append(s.rows, []string{strconv.Itoa(i + 1), f3(r.idleCores) + " cores", f0(r.baseline), f0(r.connectedRate), f2(r.ratio),
			f0(r.workingRate), f2(r.workingRate / r.baseline), r.drained.Round(time.Millisecond).String(), f0(r.assignRate), f2(r.cores) + " cores",
			mib(r.peakRSS), strconv.FormatInt(r.released, 10)})
		ok = ok && r.assignRate >= 2000 && r.peakRSS <= 1<<30 && r.idleCores <= 0.1 && r.ratio >= 0.7
	}
	s.met = verdict(ok)
	var ends []string
	for _, r := range runs {
		ends = append(ends, mib(r.anon)+" / "+mib(r.file))
	}
	s.notes = append(s.notes, "The leader's RSS at the end of each run, anonymous (the Go heap, mostly) / mapped files (Raft's bolt database): "+strings.Join(ends, "; ")+".")
	if c.fleetPin != "" {
		s.notes = append(s.notes, "Pinned: "+pinNote(c.fleetPin)+".")
	}
	if len(runs) > 0 {
		s.notes = append(s.notes, "The leader's CPU profile over 10 s of the first run, from when the fleet took work (`go tool pprof -top`):\n\n```\n"+runs[0].profile+"```")
	}
	rep.add(s)
	return nil
}

// fleetPairs is how many windows of creates with the fleet connected a
// run measures, each between two windows with no fleet.
const fleetPairs = 3

// fleetRunAlternated is run number run (from 0) with its no-fleet rates:
// a fresh cluster with no agent measured in windows before, between and
// after the run's connected windows (it idles while they run), then
// stopped before the fleet takes work.
func fleetRunAlternated(ctx context.Context, e *env, c config, run int) (fleetRun, error) {
	servers, err := fleetCluster(ctx, e, c, fmt.Sprintf("fleet-base%d", run+1))
	if err != nil {
		return fleetRun{}, fmt.Errorf("baseline %d: %w", run+1, err)
	}
	defer stopAll(servers)
	leader, err := findLeader(servers)
	if err != nil {
		return fleetRun{}, fmt.Errorf("baseline %d: %w", run+1, err)
	}
	rate := func(label string) (float64, error) {
		var created atomic.Int64
		start := time.Now()
		if err := submit(ctx, leader.url, fleetClients, 0, c.window/2, fmt.Sprintf("base%d-%s", run+1, label), &created); err != nil {
			return 0, fmt.Errorf("baseline %d, %s: %w", run+1, label, err)
		}
		r := float64(created.Load()) / time.Since(start).Seconds()
		fmt.Fprintf(os.Stderr, "   no fleet, %s: %.0f creates/s\n", label, r)
		return r, nil
	}
	r, err := fleetOnce(ctx, e, c, run, rate, func() { stopAll(servers) })
	if err != nil {
		return r, fmt.Errorf("run %d: %w", run+1, err)
	}
	var ratios []float64
	for j, cr := range r.connected {
		ratios = append(ratios, cr/((r.noFleet[j]+r.noFleet[j+1])/2))
	}
	slices.Sort(ratios)
	r.ratio = ratios[len(ratios)/2]
	r.baseline, r.connectedRate = mean(r.noFleet), mean(r.connected)
	return r, nil
}

// perSecond lists rates, rounded.
func perSecond(v []float64) string {
	var out []string
	for _, x := range v {
		out = append(out, f0(x))
	}
	return strings.Join(out, ", ")
}

// mean is the mean of v.
func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// fleetCluster starts the cluster of one run: servers pinned when asked,
// with the heap limit of a 1 GiB container.
func fleetCluster(ctx context.Context, e *env, c config, prefix string) ([]*proc, error) {
	return startClusterEnv(ctx, e, prefix, []string{"GOMEMLIMIT=768MiB"}, "--rate-limit", "0", "--pprof", "127.0.0.1:0")
}

// fleetOnce is one run: a fresh cluster, the fleet idle, then every task
// submitted and worked until the last completes. Before the fleet takes
// work, windows of creates with it connected alternate with windows of
// noFleet (the rate of another cluster), which begin and end them; done
// is called after the last.
func fleetOnce(ctx context.Context, e *env, c config, run int, noFleet func(label string) (float64, error), done func()) (fleetRun, error) {
	var r fleetRun
	servers, err := fleetCluster(ctx, e, c, fmt.Sprintf("fleet%d", run+1))
	if err != nil {
		return r, err
	}
	defer stopAll(servers)
	leader, err := findLeader(servers)
	if err != nil {
		return r, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4*c.agents + 128, MaxIdleConns: 4*c.agents + 128, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	nodes := client.New(leader.url, nodeToken, client.WithHTTPClient(&http.Client{Transport: tr, Timeout: time.Minute}), client.WithRetries(20))
	fleet, err := fleetsim.Start(ctx, fleetsim.Config{Client: nodes, Agents: c.agents, StepTime: c.stepTime})
	if err != nil {
		return r, err
	}
	defer fleet.Stop()

	// The fleet connected and idle: heartbeats and long-polls only. It
	// drains, so that it stays connected but takes no work while the
	// creates are measured beside it.
	if err := fleet.Drain(ctx); err != nil {
		return r, err
	}
	time.Sleep(2 * time.Second)
	idle0, _ := procStats(leader.cmd.Process.Pid)
	time.Sleep(10 * time.Second)
	idle1, _ := procStats(leader.cmd.Process.Pid)
	r.idleCores = (idle1 - idle0) / 10

	// The no-fleet windows between are left out of the run's times and
	// CPU: the fleet is drained, the tasks wait.
	var pause time.Duration
	var pauseCPU float64
	pauseAll := make([]float64, len(servers)+1)
	other := func(label string) error {
		at, cpu, all := time.Now(), leaderCPU(leader), cpuOf(servers)
		rate, err := noFleet(label)
		pause += time.Since(at)
		pauseCPU += leaderCPU(leader) - cpu
		pauseAll = plus(pauseAll, minus(cpuOf(servers), all))
		r.noFleet = append(r.noFleet, rate)
		return err
	}
	cpu0, _ := procStats(leader.cmd.Process.Pid)
	all0 := cpuOf(servers)
	start := time.Now()
	if err := other("before"); err != nil {
		return r, err
	}
	// Each connected window ends early if it has made a sixth of the
	// run's tasks: at least half of them are created with the fleet at
	// work.
	var created atomic.Int64
	for j := range fleetPairs {
		n0, t0 := created.Load(), time.Now()
		if err := submit(ctx, leader.url, fleetClients, c.tasks/(2*fleetPairs), c.window/2, fmt.Sprintf("run%d-connected%d", run, j), &created); err != nil {
			return r, err
		}
		r.connected = append(r.connected, float64(created.Load()-n0)/time.Since(t0).Seconds())
		if err := other(fmt.Sprintf("after connected window %d", j+1)); err != nil {
			return r, err
		}
	}
	done()
	early := created.Load()
	if err := fleet.Resume(ctx); err != nil {
		return r, err
	}

	// The fleet at work: the tasks so far, and the rest submitted now.
	working := time.Now()
	profDone := make(chan string, 1)
	go func() { profDone <- profileTop(ctx, e, leader, 10*time.Second, "leader.pprof") }()
	subErr := make(chan error, 1)
	go func() {
		err := submit(ctx, leader.url, fleetClients, c.tasks-int(early), 0, fmt.Sprintf("run%d", run), &created)
		r.submitted = time.Since(start) - pause
		r.workingRate = float64(c.tasks-int(early)) / time.Since(working).Seconds()
		subErr <- err
	}()
	submitting := true
	last, lastAt := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case err := <-subErr:
			if err != nil {
				return r, fmt.Errorf("submit: %w", err)
			}
			submitting = false
			subErr = nil
		case <-time.After(time.Second):
		}
		done, err := fleetsim.Completed(ctx, leader.url)
		if err != nil {
			return r, err
		}
		if done >= int64(c.tasks) && !submitting {
			break
		}
		if done != last {
			last, lastAt = done, time.Now()
			if int(time.Since(start).Seconds())%5 == 0 {
				fmt.Fprintf(os.Stderr, "   %s: %d created, %d assignments, %d tasks done\n", time.Since(start).Round(time.Second), created.Load(), fleet.Assigned(), done)
			}
		} else if time.Since(lastAt) > time.Minute {
			fmt.Fprint(os.Stderr, <-profDone)
			return r, fmt.Errorf("no task finished for a minute (%d of %d done):\n%s", done, c.tasks, fleetsim.Unfinished(ctx, client.New(leader.url, apiKey)))
		}
	}
	r.drained = time.Since(start) - pause
	cpu1, rss := procStats(leader.cmd.Process.Pid)
	all1 := minus(cpuOf(servers), pauseAll)
	fmt.Fprintf(os.Stderr, "   CPU seconds over the run: servers %s, this process (the fleet and the clients) %.1f\n", cpuDelta(all0, all1), all1[len(all1)-1]-all0[len(all0)-1])
	r.assignRate = float64(fleet.Assigned()) / r.drained.Seconds()
	r.cores = (cpu1 - cpu0 - pauseCPU) / r.drained.Seconds()
	r.peakRSS = rss
	r.anon, r.file = rssParts(leader.cmd.Process.Pid)
	r.released = fleet.Assigned() - 4*int64(c.tasks)
	if dst := os.Getenv("BENCH_KEEP_LOG"); dst != "" {
		data, _ := os.ReadFile(leader.log)
		_ = os.WriteFile(dst, data, 0o644)
	}
	if why := releases(leader.log); why != "" {
		fmt.Fprintf(os.Stderr, "   steps run again, by reason: %s\n", why)
	}
	r.profile = <-profDone
	if os.Getenv("BENCH_PROFILE") != "" {
		fmt.Fprint(os.Stderr, r.profile, heapTop(ctx, e, leader, "leader.heap"))
	}
	return r, nil
}

// submit posts video tasks from clients concurrent clients to url, each
// with its own Idempotency-Key (a retry after an error reuses it), until n
// are committed (n > 0) or d has passed (d > 0), whichever comes first;
// created counts the 201s.
func submit(ctx context.Context, url string, clients, n int, d time.Duration, prefix string, created *atomic.Int64) error {
	return submitAs(ctx, url, apiKey, clients, n, d, prefix, created)
}

// submitAs is submit with the API key auth.
func submitAs(ctx context.Context, url, auth string, clients, n int, d time.Duration, prefix string, created *atomic.Int64) error {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxIdleConns: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	var next atomic.Int64
	deadline := time.Now().Add(d)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := next.Add(1)
				if (n > 0 && k > int64(n)) || (d > 0 && time.Now().After(deadline)) {
					return
				}
				body := fmt.Sprintf(`{"kind":"video","input":"https://example.com/fleet/%s-%d.mov"}`, prefix, k)
				if err := postTask(ctx, hc, url, auth, body, fmt.Sprintf("%s-%d", prefix, k)); err != nil {
					errs <- err
					return
				}
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, ctx.Err())
}

// postTask creates one task, trying again (with the same key) after a
// transport error or a 503 for up to a minute.
func postTask(ctx context.Context, hc *http.Client, url, auth, body, key string) error {
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && ctx.Err() == nil; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/tasks", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := hc.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				return nil
			}
			err = fmt.Errorf("POST /tasks: %s: %s", resp.Status, bytes.TrimSpace(msg))
			if resp.StatusCode != http.StatusServiceUnavailable {
				return err
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// profileTop takes a CPU profile of a server, keeps it in the work folder
// as name, and returns pprof's top entries.
func profileTop(ctx context.Context, e *env, p *proc, d time.Duration, name string) string {
	addr, ok := logField(p.log, "serving pprof", "addr")
	if !ok {
		return "(no profiler address in the log)\n"
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return err.Error() + "\n"
	}
	defer resp.Body.Close()
	path := filepath.Join(e.dir, name)
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

// saveProfile keeps a server's profile of kind (allocs, heap, …) in the
// work folder as name, for pprof -base to compare two of them.
func saveProfile(e *env, p *proc, kind, name string) {
	addr, ok := logField(p.log, "serving pprof", "addr")
	if !ok {
		return
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + kind)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if f, err := os.Create(filepath.Join(e.dir, name)); err == nil {
		_, _ = io.Copy(f, resp.Body)
		f.Close()
	}
}

// heapTop takes a profile of a server's live heap, keeps it in the work
// folder as name, and returns pprof's top entries.
func heapTop(ctx context.Context, e *env, p *proc, name string) string {
	addr, ok := logField(p.log, "serving pprof", "addr")
	if !ok {
		return "(no profiler address in the log)\n"
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err.Error() + "\n"
	}
	defer resp.Body.Close()
	path := filepath.Join(e.dir, name)
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

// cpuOf reads the CPU seconds of each server and, last, of this process.
func cpuOf(servers []*proc) []float64 {
	var out []float64
	for _, p := range servers {
		cpu, _ := procStats(p.cmd.Process.Pid)
		out = append(out, cpu)
	}
	self, _ := procStats(os.Getpid())
	return append(out, self)
}

// leaderCPU is the CPU seconds a server has used so far.
func leaderCPU(p *proc) float64 {
	cpu, _ := procStats(p.cmd.Process.Pid)
	return cpu
}

// plus returns a + b, item by item.
func plus(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// minus returns a - b, item by item.
func minus(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

func cpuDelta(a, b []float64) string {
	var parts []string
	for i := 0; i < len(a)-1; i++ {
		parts = append(parts, fmt.Sprintf("%.1f", b[i]-a[i]))
	}
	return strings.Join(parts, " / ")
}

// releases counts the leader's "releasing step" log lines by reason.
func releases(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	count := map[string]int{}
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, `"msg":"releasing step"`) && !strings.Contains(l, `"msg":"step failed"`) {
			continue
		}
		var rec struct{ Msg, Reason, Error string }
		if json.Unmarshal([]byte(l), &rec) == nil {
			count[rec.Msg+": "+rec.Reason+rec.Error]++
		}
	}
	var parts []string
	for why, n := range count {
		parts = append(parts, fmt.Sprintf("%s (%d)", why, n))
	}
	return strings.Join(parts, "; ")
}
