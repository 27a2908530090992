package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit/test/release"
)

// targetClients is the level the target is set at; it is measured over
// several windows on each side.
const targetClients = 64

// windowsAt is how many windows level n is measured over.
func (c config) windowsAt(n int) int {
	if n == targetClients {
		return c.windows
	}
	return 1
}

// medianWindow is the window with the median rate.
func medianWindow(ws []loadResult) loadResult {
	sorted := append([]loadResult(nil), ws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].rate < sorted[j].rate })
	return sorted[len(sorted)/2]
}

// medianCost is the window with the median leader CPU per task.
func medianCost(ws []loadResult) loadResult {
	sorted := append([]loadResult(nil), ws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].cost.leaderCPU < sorted[j].cost.leaderCPU })
	return sorted[len(sorted)/2]
}

// logFloor prints a window of the floor (floornode), where is what set it
// apart ("" for 64 clients over its three nodes).
func logFloor(where string, f loadResult) {
	fmt.Fprintf(os.Stderr, "   floor at %d clients%s: %.0f tasks/s, p50 %.1f ms, p99 %.1f ms; leader %.0f µs CPU (%.0f in the kernel, %.0f in sysmon), %s per task (followers %.0f µs)\n",
		targetClients, where, f.rate, f.p50, f.p99, f.cost.leaderCPU, f.cost.leaderSys, f.cost.monitor, f.cost.io(), f.cost.followersCPU)
}

// leaderCPUs lists the windows' leader CPU per task in the order they
// ran.
func leaderCPUs(ws []loadResult) string {
	return each(ws, func(w loadResult) float64 { return w.cost.leaderCPU })
}

// rates lists the windows' rates in the order they ran.
func rates(ws []loadResult) string {
	return each(ws, func(w loadResult) float64 { return w.rate })
}

// each lists one figure of each window, in the order they ran.
func each(ws []loadResult, figure func(loadResult) float64) string {
	var out []string
	for _, w := range ws {
		out = append(out, f0(figure(w)))
	}
	return strings.Join(out, ", ")
}

// benchThroughput posts tasks to a 3-node cluster at 16, 64 and 256
// concurrent clients and compares the committed rate with a raw
// hashicorp/raft cluster applying entries of one task's size at the same
// concurrency.
//
// BENCH_PROFILE=1 prints the leader's CPU profile at 64 clients (kept as
// leader.pprof in the work folder); =follower profiles a follower there
// instead; =direct also profiles the leader in the first window with
// every request sent to it (direct.pprof, and its allocations in
// direct-allocs-before.pprof and direct-allocs-after.pprof), and the
// floor's leader in its window beside it (floor-direct.pprof); =floor also
// profiles the floor's leader in its first window over the three nodes
// (floor.pprof: read it with the floornode binary beside it). The
// leader's profile at 64 clients is always taken, in a window of its own
// that is not counted; the profiles of =direct and =floor are taken in
// counted windows: for an investigation, not for the record.
func benchThroughput(ctx context.Context, e *env, c config, rep *report) error {
	// The baseline's cluster runs beside the current one, and at 64
	// clients their windows alternate, so that both see the same host;
	// the order turns from window to window (inRotation).
	var base []*proc
	var baseLeader *proc
	if c.baseline != "" {
		var err error
		if base, baseLeader, err = startBaseline(ctx, e, c); err != nil {
			return err
		}
		defer stopAll(base)
	}
	// So does the floor (floornode: the least a task API on net/http and
	// hashicorp/raft does), spread over its three nodes at 64 clients
	// and, further on, with every request sent to its leader.
	floor, floorLeader, err := startFloor(ctx, e)
	if err != nil {
		return err
	}
	defer stopAll(floor)
	servers, err := startCluster(ctx, e, "tp", "--rate-limit", "0", "--pprof", "127.0.0.1:0")
	if err != nil {
		return err
	}
	urls := urlsOf(servers)
	body := []byte(`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`)
	entrySize := createEntrySize(body)
	results := map[int]loadResult{}
	leader, err := findLeader(servers)
	if err != nil {
		stopAll(servers)
		return err
	}
	for _, cluster := range [][]*proc{servers, floor, base} {
		if cluster != nil {
			if err := warmUp(ctx, urlsOf(cluster), body); err != nil {
				stopAll(servers)
				return err
			}
		}
	}
	// floorWindow runs one window of the floor at 64 clients sending to
	// urls, taking its leader's CPU profile into the file profile (none
	// when ""), and adds the result to dst.
	floorWindow := func(urls []string, where, profile string, dst *[]loadResult) error {
		var prof chan string
		if profile != "" {
			prof = make(chan string, 1)
			go func() { prof <- profileTop(ctx, e, floorLeader, c.window-time.Second, profile) }()
		}
		f, err := measure(ctx, floor, floorLeader, urls, body, targetClients, c.window)
		if prof != nil {
			<-prof
		}
		if err != nil {
			return err
		}
		*dst = append(*dst, f)
		logFloor(where, f)
		return nil
	}
	var top string
	windows := map[int][]loadResult{}
	var baseWindows, floorSpread []loadResult
	for _, n := range c.levels {
		if n == targetClients {
			// The profile has a window of its own, not counted: the
			// profiler's signals and stack walks, and the allocation
			// profiles fetched around it, are CPU the leader spends for
			// the bench, not for the tasks.
			t, err := profileWindow(ctx, e, servers, leader, urls, body, n, c.window)
			if err != nil {
				stopAll(servers)
				return err
			}
			top = t
		}
		for w := 0; w < c.windowsAt(n); w++ {
			runIttybit := func() error {
				r, err := measure(ctx, servers, leader, urls, body, n, c.window)
				if err != nil {
					return err
				}
				windows[n] = append(windows[n], r)
				fmt.Fprintf(os.Stderr, "   ittybit at %d clients: %.0f tasks/s, p50 %.1f ms, p99 %.1f ms (%d errors); leader %s\n", n, r.rate, r.p50, r.p99, r.errors, r.cost)
				return nil
			}
			runs := []func() error{runIttybit}
			if n == targetClients && base != nil {
				runs = append(runs, func() error {
					b, err := measure(ctx, base, baseLeader, urlsOf(base), body, n, c.window)
					if err != nil {
						return err
					}
					baseWindows = append(baseWindows, b)
					fmt.Fprintf(os.Stderr, "   release %s at %d clients: %.0f tasks/s, p50 %.1f ms, p99 %.1f ms; leader %s\n", c.baseline, n, b.rate, b.p50, b.p99, b.cost)
					return nil
				})
			}
			if n == targetClients {
				profile := ""
				if w == 0 && os.Getenv("BENCH_PROFILE") == "floor" {
					profile = "floor.pprof"
				}
				runs = append(runs, func() error { return floorWindow(urlsOf(floor), "", profile, &floorSpread) })
			}
			if err := inRotation(runs, w); err != nil {
				stopAll(servers)
				return err
			}
		}
		results[n] = medianWindow(windows[n])
	}
	// The same at 64 clients sending everything to the leader (what the
	// forwarding hop costs), window for window beside the floor.
	var directWindows, floorWindows []loadResult
	for w := 0; w < c.windowsAt(targetClients); w++ {
		runDirect := func() error {
			var dprof chan string
			if w == 0 && os.Getenv("BENCH_PROFILE") == "direct" {
				dprof = make(chan string, 1)
				go func() { dprof <- profileTop(ctx, e, leader, c.window-time.Second, "direct.pprof") }()
				saveProfile(e, leader, "allocs", "direct-allocs-before.pprof")
			}
			d, err := measure(ctx, servers, leader, []string{leader.url}, body, targetClients, c.window)
			if dprof != nil {
				saveProfile(e, leader, "allocs", "direct-allocs-after.pprof")
				<-dprof
			}
			if err != nil {
				return err
			}
			directWindows = append(directWindows, d)
			fmt.Fprintf(os.Stderr, "   ittybit at %d clients, leader only: %.0f tasks/s, p50 %.1f ms, p99 %.1f ms; leader %s\n", targetClients, d.rate, d.p50, d.p99, d.cost)
			return nil
		}
		profile := ""
		if w == 0 && os.Getenv("BENCH_PROFILE") == "direct" {
			profile = "floor-direct.pprof"
		}
		runFloor := func() error { return floorWindow([]string{floorLeader.url}, ", leader only", profile, &floorWindows) }
		if err := inRotation([]func() error{runDirect, runFloor}, w); err != nil {
			stopAll(servers)
			return err
		}
	}
	direct, floorAt, floorOver := medianCost(directWindows), medianCost(floorWindows), medianCost(floorSpread)
	stopAll(floor)
	stopAll(servers)
	stopAll(base)

	raw, wal := map[int]loadResult{}, map[int]loadResult{}
	rawWindows, walWindows := map[int][]loadResult{}, map[int][]loadResult{}
	for _, n := range c.levels {
		for w := 0; w < c.windowsAt(n); w++ { // the two stores in turn, as the host drifts, the first turned each window
			for i := range 2 {
				store := []string{rawBolt, rawWAL}[(w+i)%2]
				r, err := rawRaft(ctx, filepath.Join(e.dir, fmt.Sprintf("raw%d-%d-%s", n, w, store)), store, entrySize, n, c.window)
				if err != nil {
					return err
				}
				if store == rawBolt {
					rawWindows[n] = append(rawWindows[n], r)
				} else {
					walWindows[n] = append(walWindows[n], r)
				}
				fmt.Fprintf(os.Stderr, "   raw raft (%s) at %d writers: %.0f entries/s, p50 %.1f ms, p99 %.1f ms\n", store, n, r.rate, r.p50, r.p99)
			}
		}
		raw[n], wal[n] = medianWindow(rawWindows[n]), medianWindow(walWindows[n])
	}
	s := &section{
		title: "2. API write throughput against raw hashicorp/raft",
		intro: fmt.Sprintf("`POST /tasks` (the seed's video body) from N concurrent keep-alive clients, spread over the three nodes of a cluster of "+
			"`ittybit server` processes on loopback (followers forward to the leader), for %s per level, after %s of load at 16 clients that is not measured (each cluster of the section gets the same: a new leader writes JSON create entries until it has asked every voter whether it reads the binary form, once a second); committed = answered 201. "+
			"The anchor is a raw 3-node hashicorp/raft cluster (TCP transport on loopback, raft-boltdb, the same Raft settings, a no-op FSM) "+
			"in one process, N goroutines each applying entries of %d bytes (one task's share of a create entry: its seed and request key) for the same time. "+
			"ittybit gathers concurrent creates into one entry (group commit), so its rate can pass the raw one. "+
			"ittybit's own log is raft-wal (one append and one fsync per batch, where raft-boltdb rewrites B-tree pages and syncs twice), "+
			"so the same raw cluster on raft-wal runs beside the anchor, the two in turn, and the last two columns compare with it.", c.window, warmUpFor, entrySize),
		header: []string{"clients", "ittybit tasks/s", "p50 ms", "p99 ms", "raw raft entries/s", "raw p50 ms", "raw p99 ms", "ratio",
			"leader CPU µs/task", "of which kernel µs", "leader allocs/task", "leader KiB allocated/task", "followers' CPU µs/task", "tasks per entry", "raw raft on raft-wal entries/s", "ratio to it"},
		target: "≥ 0.5 × the raw rate at 64 clients, and the leader's CPU ≤ 60 µs per committed task",
	}
	row := func(label string, o, r, w loadResult) []string {
		return []string{label, f0(o.rate), f1(o.p50), f1(o.p99), f0(r.rate), f1(r.p50), f1(r.p99), f2(o.rate / r.rate),
			f0(o.cost.leaderCPU), f0(o.cost.leaderSys), f0(o.cost.allocs), f1(o.cost.bytes / 1024), f0(o.cost.followersCPU), f1(o.cost.perEntry), f0(w.rate), f2(o.rate / w.rate)}
	}
	floorRow := func(label string, f loadResult) []string {
		r := row(label, f, raw[targetClients], wal[targetClients])
		r[10], r[11], r[13] = "–", "–", "–" // no /metrics
		return r
	}
	for _, n := range c.levels {
		s.rows = append(s.rows, row(fmt.Sprint(n), results[n], raw[n], wal[n]))
		if n == targetClients {
			s.rows = append(s.rows, floorRow("64: the floor", floorOver))
		}
	}
	s.rows = append(s.rows, row("64, all to the leader", direct, raw[64], wal[64]))
	s.rows = append(s.rows, floorRow("64, all to the leader: the floor", floorAt))
	if c.baseline != "" {
		s.rows = append(s.rows, row("64, release "+c.baseline+" (before)", medianWindow(baseWindows), raw[64], wal[64]))
	}
	at, over := results[targetClients], medianCost(windows[targetClients])
	s.met = verdict(at.rate >= 0.5*raw[targetClients].rate && at.cost.leaderCPU <= 60)
	s.notes = append(s.notes, fmt.Sprintf("Both rates swing from window to window on a shared 2-core machine (fsync times, the other processes), "+
		"so at %d clients each side ran %d windows and the table gives the median window; all of them: ittybit %s tasks/s, raw raft %s entries/s, raw raft on raft-wal %s entries/s.",
		targetClients, c.windowsAt(targetClients), rates(windows[targetClients]), rates(rawWindows[targetClients]), rates(walWindows[targetClients])))
	s.notes = append(s.notes, "*Leader CPU µs/task* is the leader process's user + system time (from `/proc/PID/stat`) over the window, divided by the tasks answered 201 "+
		"through all three nodes (forwarded ones included), and *of which kernel* its system time alone (syscalls: socket reads and writes, fsync); *allocs* and *KiB allocated* are the growth of its `go_memstats_mallocs_total` and `go_memstats_alloc_bytes_total` over the same window, per task; "+
		"*followers' CPU* is the same time of the two other servers together; *tasks per entry* is the tasks answered over the Raft entries the leader applied (`ittybit_raft_apply_seconds_count`). At 64 clients a window of its own, before the measured ones and not counted, runs the CPU profile below (the profiler costs the leader CPU).")
	s.notes = append(s.notes, fmt.Sprintf("*The floor* is the least a task API on the same libraries does for a create, measured in the same way in this run: "+
		"three `test/bench/floornode` processes, each net/http in front of a hashicorp/raft node (TCP on loopback, raft-wal, the same settings); "+
		"a `POST /tasks` reads the body, decodes its JSON, takes an id, joins the creates in flight in one entry (group commit, one entry in flight as ittybit), "+
		"waits for the commit and answers 201 with a small JSON object, and the state machine keeps each task's body in a map: no authentication, validation, "+
		"idempotency keys, events, queue, metrics or log lines. Its followers forward as ittybit's do: each decodes its creates and joins those in flight "+
		"into one request to the leader (one under way, up to 256 creates each), which commits them with its own and answers their ids. "+
		"At %d clients over the three nodes, its windows and ittybit's run in turn, the order turned from window to window so that each side takes each place as often (the rows give the window of median leader CPU): "+
		"ittybit's leader %s µs a task, the floor's %s; **ittybit's leader spends %.2f × the floor's CPU per task** (%.0f against %.0f µs, %.0f against %.0f in the kernel). "+
		"With every request sent to the leader, in alternate windows: ittybit's leader %s µs a task, the floor's %s, %.2f × (%.0f against %.0f µs, %.0f against %.0f in the kernel).",
		targetClients, leaderCPUs(windows[targetClients]), leaderCPUs(floorSpread), over.cost.leaderCPU/floorOver.cost.leaderCPU,
		over.cost.leaderCPU, floorOver.cost.leaderCPU, over.cost.leaderSys, floorOver.cost.leaderSys,
		leaderCPUs(directWindows), leaderCPUs(floorWindows),
		direct.cost.leaderCPU/floorAt.cost.leaderCPU, direct.cost.leaderCPU, floorAt.cost.leaderCPU, direct.cost.leaderSys, floorAt.cost.leaderSys))
	own := over.cost.leaderCPU - floorOver.cost.leaderCPU
	if floorOver.cost.leaderCPU > 60 {
		s.notes[len(s.notes)-1] += fmt.Sprintf(" The floor's leader alone spends %.0f µs a task at %d clients over its three nodes: in this run, the target of 60 µs is below what net/http, "+
			"hashicorp/raft and raft-wal cost for a create, before any of the service's own work (%.0f µs a task of ittybit's leader here).", floorOver.cost.leaderCPU, targetClients, own)
	} else {
		s.notes[len(s.notes)-1] += fmt.Sprintf(" The floor's leader spends %.0f µs a task at %d clients over its three nodes, within the target of 60 µs in this run: "+
			"what ittybit's leader spends beyond it, %.0f µs a task, is its own work.", floorOver.cost.leaderCPU, targetClients, own)
	}
	s.notes = append(s.notes, fmt.Sprintf("What the two leaders ask of the kernel per task, in the same median windows (`/proc/PID/io`, `/proc/PID/task/*/status`, `/proc/PID/stat`): "+
		"over the three nodes, ittybit %s; the floor %s. All to the leader, ittybit %s; the floor %s. "+
		"Equal numbers of reads and writes say both servers make the same round trips; the bytes written differ by the size of ittybit's create entries "+
		"(replicated twice and written to the log) and of its answers (the whole task).",
		over.cost.io(), floorOver.cost.io(), direct.cost.io(), floorAt.cost.io()))
	s.notes = append(s.notes, fmt.Sprintf("Of each leader's CPU, the Go runtime's monitor thread (sysmon: the first thread the runtime starts, "+
		"its own time from `/proc/PID/task/TID/stat`) took, in the same median windows, %.0f µs a task of ittybit's and %.0f of the floor's over the three nodes "+
		"(%.0f %% and %.0f %%), and %.0f and %.0f with every request sent to the leader. Under this load sysmon keeps going back to its shortest sleep, 20 µs, "+
		"because whenever a system call outlasts one of its ticks while other goroutines wait (the log's fsync, a socket write), it hands that P to another thread "+
		"and starts its short sleeps over (golang/go#18236); each wakeup is a timer interrupt and two context switches of a virtual CPU. "+
		"It is the Go runtime's cost on a small virtual machine, about the same CPU a second for both servers, so less a task where more tasks a second are served.",
		over.cost.monitor, floorOver.cost.monitor, 100*over.cost.monitor/over.cost.leaderCPU, 100*floorOver.cost.monitor/floorOver.cost.leaderCPU,
		direct.cost.monitor, floorAt.cost.monitor))
	if c.baseline != "" {
		s.notes = append(s.notes, fmt.Sprintf("*Before*: the row of release %s is the same measure (64 clients over the three nodes, the median of %d windows) of servers built from that commit "+
			"(before batched forwarding from followers and binary create entries), running beside the current ones in this same bench, its windows in turn with theirs and the floor's, the order turned from window to window (the idle cluster only heartbeats); its windows: %s tasks/s. "+
			"The issue's first measure was 447 µs of leader CPU per task.", c.baseline, c.windowsAt(targetClients), rates(baseWindows)))
	}
	s.notes = append(s.notes, "The leader's CPU profile at 64 clients (`go tool pprof -top`):\n\n```\n"+top+"```")
	rep.add(s)
	return nil
}

// startBaseline starts a cluster of the servers of commit c.baseline and
// returns it with its leader.
func startBaseline(ctx context.Context, e *env, c config) ([]*proc, *proc, error) {
	bin, err := release.Build(ctx, c.baseline, e.dir)
	if err != nil {
		return nil, nil, err
	}
	be := *e
	be.bin = bin
	servers, err := startCluster(ctx, &be, "base", "--rate-limit", "0")
	if err != nil {
		return nil, nil, err
	}
	leader, err := findLeader(servers)
	if err != nil {
		stopAll(servers)
		return nil, nil, err
	}
	return servers, leader, nil
}

// measure posts body from n clients to urls for d (postLoad) and adds
// what each committed task cost the servers (costPerTask).
func measure(ctx context.Context, servers []*proc, leader *proc, urls []string, body []byte, n int, d time.Duration) (loadResult, error) {
	before := usageOf(ctx, servers)
	r, _, err := postLoad(ctx, urls, body, n, d)
	r.cost = costPerTask(before, usageOf(ctx, servers), leader, r.rate*d.Seconds())
	return r, err
}

// warmUp puts a cluster under load for a while before its first
// measured window: a new leader writes its create entries in the binary
// form only once every voter has said that it reads them (the leader asks
// once a second), so for about a second after the cluster forms they are
// JSON; and the processes' heaps and connections grow to their working
// size. Each cluster is warmed the same way.
func warmUp(ctx context.Context, urls []string, body []byte) error {
	_, _, err := postLoad(ctx, urls, body, 16, warmUpFor)
	return err
}

// warmUpFor is how long warmUp loads a cluster.
const warmUpFor = 3 * time.Second

// urlsOf lists the servers' API URLs.
func urlsOf(servers []*proc) []string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.url)
	}
	return urls
}

// startCluster starts three `ittybit server` processes: a bootstraps, b
// and c join.
func startCluster(ctx context.Context, e *env, prefix string, extra ...string) ([]*proc, error) {
	return startClusterEnv(ctx, e, prefix, nil, extra...)
}

// startClusterEnv is startCluster with extra environment variables.
func startClusterEnv(ctx context.Context, e *env, prefix string, extraEnv []string, extra ...string) ([]*proc, error) {
	var out []*proc
	for i, name := range []string{"a", "b", "c"} {
		data := filepath.Join(e.dir, prefix+"-"+name) // emptied by start
		args := append([]string{"server", "--node-id", name, "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0",
			"--data", data, "--log-level", "warn"}, extra...)
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", out[0].url)
		}
		p, err := e.start(ctx, prefix+"-"+name, extraEnv, append(args, "--log-level", "info")...)
		if err != nil {
			stopAll(out)
			return nil, err
		}
		out = append(out, p)
		if i == 0 {
			if err := p.waitReady(ctx); err != nil {
				stopAll(out)
				return nil, err
			}
		}
	}
	for _, p := range out {
		if err := p.waitReady(ctx); err != nil {
			stopAll(out)
			return nil, err
		}
	}
	return out, nil
}

func stopAll(ps []*proc) {
	for _, p := range ps {
		p.stop()
	}
}

// createEntrySize is the size of one task in a create entry of the Raft
// log: the seed the leader stamps (ids, time, the request) with its request
// key, as controlplane/internal/state encodes it.
func createEntrySize(body []byte) int {
	var req map[string]json.RawMessage
	_ = json.Unmarshal(body, &req)
	id := "task_01m8h0cs8823dvdt990njgnygp"
	step := "step_01m8h0cs8823dvdt990qm32h1x"
	seed := map[string]any{
		"seed": map[string]any{"id": id, "step_ids": []string{step, step, step, step}, "at": time.Now().UnixMilli(),
			"kind": req["kind"], "input": req["input"], "options": req["options"]},
		"scope": "req:0123456789ab", "key": "0123456789abcdef0123456789abcdef",
		"body_hash": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	}
	b, _ := json.Marshal(seed)
	return len(b)
}

// loadResult is a rate and latency quantiles in milliseconds.
type loadResult struct {
	rate     float64
	p50, p99 float64
	errors   int64
	cost     taskCost
}

// usage is what each server has spent so far: CPU seconds (user + system,
// and system alone, from /proc) and heap allocations (from its /metrics);
// and what it has done: batches of creates forwarded to it, Raft entries
// it applied as leader, tasks created through its own API.
type usage map[*proc]procUsage

// procUsage is one server's counters at one moment.
type procUsage struct {
	cpu, sys, mallocs, bytes, forwards, entries, created float64
	syscr, syscw, rchar, wchar, switches, faults         float64
	monitor                                              float64 // the runtime's sysmon thread's CPU seconds
}

func usageOf(ctx context.Context, servers []*proc) usage {
	u := usage{}
	for _, p := range servers {
		user, sys, faults := procCPU(p.cmd.Process.Pid)
		const (
			mallocs   = "go_memstats_mallocs_total"
			allocated = "go_memstats_alloc_bytes_total"
			forwards  = `ittybit_http_requests_total{code="200",route="POST /internal/tasks/batch"}`
			entries   = "ittybit_raft_apply_seconds_count"
			created   = `ittybit_http_requests_total{code="201",route="POST /tasks"}`
		)
		m, _ := metricValues(ctx, p.url, mallocs, allocated, forwards, entries, created) // a series not there yet counts 0
		syscr, syscw, rchar, wchar := procIO(p.cmd.Process.Pid)
		u[p] = procUsage{user + sys, sys, m[mallocs], m[allocated], m[forwards], m[entries], m[created], syscr, syscw, rchar, wchar, procSwitches(p.cmd.Process.Pid), faults, monitorCPU(p.cmd.Process.Pid)}
	}
	return u
}

// taskCost is what one committed task cost the servers: the leader's CPU
// microseconds (and those in the kernel), allocations and bytes
// allocated, and the followers' CPU microseconds together; perForward and
// perEntry are the tasks the leader received per forwarded batch and
// applied per Raft entry (entries of other kinds included); reads and
// writes are the leader's read and write system calls per task, readKiB
// and writeKiB the bytes they moved (/proc/PID/io: sockets and files),
// switches its threads' context switches and faults its minor page
// faults; monitor is the part of its CPU that the Go runtime's monitor
// thread (sysmon) took.
type taskCost struct {
	leaderCPU, leaderSys, allocs, bytes, followersCPU float64
	monitor                                           float64
	perForward, perEntry                              float64
	reads, writes, readKiB, writeKiB                  float64
	switches, faults                                  float64
}

// io is the leader's system calls, bytes, context switches and page
// faults per task.
func (c taskCost) io() string {
	return fmt.Sprintf("%.2f reads (%.2f KiB), %.2f writes (%.2f KiB), %.2f context switches, %.2f page faults", c.reads, c.readKiB, c.writes, c.writeKiB, c.switches, c.faults)
}

func (c taskCost) String() string {
	return fmt.Sprintf("%.0f µs CPU (%.0f in the kernel, %.0f in sysmon), %.0f allocs, %.1f KiB, %s per task (followers %.0f µs); %.1f tasks per forwarded batch, %.1f per entry",
		c.leaderCPU, c.leaderSys, c.monitor, c.allocs, c.bytes/1024, c.io(), c.followersCPU, c.perForward, c.perEntry)
}

// costPerTask divides what the servers spent between before and after by
// the tasks committed meanwhile.
func costPerTask(before, after usage, leader *proc, tasks float64) taskCost {
	if tasks <= 0 {
		return taskCost{}
	}
	var c taskCost
	var forwarded, forwards float64 // created through the followers; batches the leader got
	for p, a := range after {
		b := before[p]
		if p == leader {
			c.leaderCPU = (a.cpu - b.cpu) * 1e6 / tasks
			c.leaderSys = (a.sys - b.sys) * 1e6 / tasks
			c.monitor = (a.monitor - b.monitor) * 1e6 / tasks
			c.allocs = (a.mallocs - b.mallocs) / tasks
			c.bytes = (a.bytes - b.bytes) / tasks
			c.reads, c.writes = (a.syscr-b.syscr)/tasks, (a.syscw-b.syscw)/tasks
			c.readKiB, c.writeKiB = (a.rchar-b.rchar)/1024/tasks, (a.wchar-b.wchar)/1024/tasks
			c.switches, c.faults = (a.switches-b.switches)/tasks, (a.faults-b.faults)/tasks
			forwards = a.forwards - b.forwards
			if e := a.entries - b.entries; e > 0 {
				c.perEntry = tasks / e
			}
			continue
		}
		c.followersCPU += (a.cpu - b.cpu) * 1e6 / tasks
		forwarded += a.created - b.created
	}
	if forwards > 0 {
		c.perForward = forwarded / forwards
	}
	return c
}

// postLoad posts body from n clients to urls (round robin) for d. It
// returns the rate of 201s, latency quantiles and the size of one answer.
func postLoad(ctx context.Context, urls []string, body []byte, n int, d time.Duration) (loadResult, int, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxIdleConns: 4 * n}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var ok, bad atomic.Int64
	var size atomic.Int64
	lats := make([][]float64, n)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline) && ctx.Err() == nil; k++ {
				req, _ := http.NewRequestWithContext(ctx, "POST", urls[(i+k)%len(urls)]+"/tasks", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+apiKey)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					bad.Add(1)
					continue
				}
				lats[i] = append(lats[i], float64(time.Since(start).Microseconds())/1000)
				ok.Add(1)
				size.Store(int64(len(b)))
			}
		}()
	}
	wg.Wait()
	var all []float64
	for _, l := range lats {
		all = append(all, l...)
	}
	// One task's entry: its JSON plus the request key and hash around it.
	return loadResult{rate: float64(ok.Load()) / d.Seconds(), p50: quantile(all, 0.5), p99: quantile(all, 0.99), errors: bad.Load()}, int(size.Load()) + 150, ctx.Err()
}

// inRotation runs the windows of one round, the order turned by round:
// round 0 runs a, b, c; round 1 b, c, a; round 2 c, a, b. Over as many
// rounds as there are runs, each takes each place once. A fixed order
// was not neutral: an A/B of one build against itself measured the
// leader's CPU at 72, 72, 74 µs a task in the first place against 67,
// 67, 67 in the second.
func inRotation(runs []func() error, round int) error {
	for i := range runs {
		if err := runs[(round+i)%len(runs)](); err != nil {
			return err
		}
	}
	return nil
}

// profileWindow runs one window of load at n clients while it takes the
// leader's CPU profile (BENCH_PROFILE=follower: a follower's) and its
// allocation profiles before and after, and returns the profile's top;
// the window's figures are printed but not counted.
func profileWindow(ctx context.Context, e *env, servers []*proc, leader *proc, urls []string, body []byte, n int, window time.Duration) (string, error) {
	target := leader
	if os.Getenv("BENCH_PROFILE") == "follower" {
		for _, s := range servers {
			if s != leader {
				target = s
			}
		}
	}
	prof := make(chan string, 1)
	go func() { prof <- profileTop(ctx, e, target, window-time.Second, "leader.pprof") }()
	saveProfile(e, leader, "allocs", "leader-allocs-before.pprof")
	r, err := measure(ctx, servers, leader, urls, body, n, window)
	saveProfile(e, leader, "allocs", "leader-allocs-after.pprof")
	top := <-prof
	if err != nil {
		return "", err
	}
	if os.Getenv("BENCH_PROFILE") != "" {
		fmt.Fprint(os.Stderr, top)
	}
	fmt.Fprintf(os.Stderr, "   ittybit at %d clients, profiled (not counted): %.0f tasks/s; leader %s\n", n, r.rate, r.cost)
	return top, nil
}
