// Command bench measures ittybit beside its anchors and writes
// BENCHMARKS.md: the overhead of a task against bare ffmpeg, API write
// throughput against a raw hashicorp/raft cluster, dispatch latency, fleet
// scale with simulated agents, and software encoder throughput. `make
// bench` runs it; it is never part of `make test`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config are the knobs of a run; the defaults fit `make bench` on a
// 2-core machine in about 25 minutes (three fleet runs of 100,000 tasks
// take most of it).
type config struct {
	out       string
	only      string
	runs      int
	clipSecs  int
	window    time.Duration
	dispatchN int
	agents    int
	tasks     int
	fleetRuns int
	fleetPin  string
	stepTime  time.Duration
	encSecs   int
	splitSecs int
	// splitRuns: how many times the split benchmark times each side,
	// interleaved.
	splitRuns int
	// smallRuns and smallBurst: runs of each small task, and tasks of
	// each kind in its CPU burst.
	smallRuns, smallBurst int
	// memStateTasks: tasks of the in-process memory measure;
	// memServerTasks: tasks one server holds; retireBacklog: finished
	// tasks retiring under write load.
	memStateTasks, memServerTasks, retireBacklog int
	// retireWindow: how long writers post while tasks retire.
	retireWindow time.Duration
	// levels: the client counts of the throughput comparison.
	levels []int
	// baseline: a commit whose servers the throughput comparison also
	// measures at 64 clients, in the same run ("": none).
	baseline string
	// windows: how many windows the throughput comparison measures at 64
	// clients (the target's), each side in turn.
	windows int
}

func run(ctx context.Context, args []string) error {
	var c config
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.StringVar(&c.out, "out", "BENCHMARKS.md", "where to write the report")
	fl.StringVar(&c.only, "only", "", "comma-separated subset: overhead,throughput,dispatch,fleet,encoders,split,splitfleet,webhooks,small,memory")
	fl.IntVar(&c.runs, "runs", 5, "runs of each side of the overhead comparison")
	fl.IntVar(&c.clipSecs, "clip-seconds", 10, "length of the 1080p30 clip of the overhead test")
	fl.DurationVar(&c.window, "window", 8*time.Second, "how long each throughput measurement posts")
	fl.IntVar(&c.dispatchN, "dispatch-steps", 1000, "steps measured for dispatch latency")
	fl.IntVar(&c.agents, "agents", 1000, "simulated agents in the fleet test")
	fl.IntVar(&c.tasks, "tasks", 100000, "tasks in the fleet test")
	fl.IntVar(&c.fleetRuns, "fleet-runs", 3, "runs of the fleet test, each on a fresh cluster")
	fl.StringVar(&c.fleetPin, "fleet-pin", "", "FLEET:SERVERS: pin the simulated fleet (this process) and the servers of the fleet test to these CPU lists (taskset), e.g. 0:1")
	fl.DurationVar(&c.stepTime, "step-time", 20*time.Millisecond, "how long a simulated agent takes per step")
	fl.IntVar(&c.encSecs, "encoder-seconds", 4, "length of the clip of the encoder table")
	fl.IntVar(&c.splitSecs, "split-seconds", 120, "length of the video of the split benchmark")
	fl.IntVar(&c.splitRuns, "split-runs", 3, "how many times the split benchmark times each side, interleaved (the medians are compared)")
	fl.IntVar(&c.smallRuns, "small-runs", 9, "runs of each small task (at least 9)")
	fl.IntVar(&c.smallBurst, "small-burst", 100, "tasks of each kind in the small tasks' CPU burst")
	fl.IntVar(&c.memStateTasks, "mem-state-tasks", 1_000_000, "finished tasks of the in-process memory measure (the state package; 0: not measured)")
	fl.IntVar(&c.memServerTasks, "mem-server-tasks", 100_000, "tasks one server holds in the memory measure (0: not measured)")
	fl.IntVar(&c.retireBacklog, "retire-backlog", 50_000, "finished tasks that retire while writers post")
	fl.DurationVar(&c.retireWindow, "retire-window", 24*time.Second, "how long writers post while tasks retire (and without retirement, the anchor)")
	fl.StringVar(&c.baseline, "baseline", "8e226e7", "a commit of this repository whose servers the throughput comparison also measures at 64 clients, in the same run (the release before batched forwarding and binary entries; \"\": none)")
	fl.IntVar(&c.windows, "windows", 3, "windows of the throughput comparison at 64 clients, the target's (the median is reported)")
	levels := fl.String("levels", "16,64,256", "client counts of the throughput comparison (64, the target's, is measured over -windows windows)")
	update := fl.Bool("update", false, "with -only: replace the sections run in the existing report (-out), each marked as rerun on its own, and leave the rest")
	keep := fl.String("work", "", "use this folder for the binary, clips and profiles (leader.pprof, leader.heap, memory-queued.heap, memory-finished.heap, retire-on.pprof, …) and keep it; by default a temporary folder, removed at the end")
	cpuProfile := fl.String("cpuprofile", "", "write this process's CPU profile (the simulated fleet, the clients) to this file")
	if err := fl.Parse(args); err != nil {
		return err
	}
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-levels %q: want whole numbers of clients, like 16,64,256", *levels)
		}
		c.levels = append(c.levels, n)
	}
	if !slices.Contains(c.levels, targetClients) {
		return fmt.Errorf("-levels %q: include %d, the level the target is set at (the baseline and the floor are measured there)", *levels, targetClients)
	}
	if c.windows < 1 {
		return fmt.Errorf("-windows %d: want 1 or more", c.windows)
	}
	if *update && c.only == "" {
		return fmt.Errorf("-update replaces the sections of a subset: give -only too")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	want := func(name string) bool { return c.only == "" || strings.Contains(","+c.only+",", ","+name+",") }

	work := *keep
	if work == "" {
		tmp, err := os.MkdirTemp("", "ittybit-bench-")
		if err != nil {
			return err
		}
		work = tmp
		defer os.RemoveAll(tmp)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	e, err := newEnv(ctx, work)
	if err != nil {
		return err
	}
	rep := &report{started: time.Now(), machine: machine(), ffmpeg: e.ffmpeg}
	type stage struct {
		name string
		fn   func(context.Context, *env, config, *report) error
	}
	for _, s := range []stage{
		{"overhead", benchOverhead},
		{"throughput", benchThroughput},
		{"dispatch", benchDispatch},
		{"fleet", benchFleet},
		{"encoders", benchEncoders},
		{"split", benchSplit},
		{"splitfleet", benchSplitFleet},
		{"webhooks", benchWebhooks},
		{"small", benchSmall},
		{"memory", benchMemory},
		{"fairness", benchFairness},
	} {
		if !want(s.name) {
			continue
		}
		start := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", s.name)
		if err := s.fn(ctx, e, c, rep); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "   %s done in %s\n", s.name, time.Since(start).Round(time.Second))
	}
	rep.finished = time.Now()
	fmt.Print(rep.table())
	cmdline := "go run ./test/bench " + strings.Join(args, " ")
	md := rep.markdown(cmdline)
	if c.only != "" {
		if !*update {
			return nil // a partial run does not replace the report
		}
		old, err := os.ReadFile(c.out)
		if err != nil {
			return err
		}
		md = rep.update(string(old), cmdline)
	}
	if err := os.WriteFile(c.out, []byte(md), 0o644); err != nil {
		return err
	}
	abs, _ := filepath.Abs(c.out)
	fmt.Fprintf(os.Stderr, "wrote %s\n", abs)
	return nil
}

// machine describes where the figures were measured.
func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d × %s%s, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
