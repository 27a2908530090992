package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Credentials of the processes the benchmarks start.
const (
	apiKey    = "bench-api-key"
	nodeToken = "bench-node-token"
)

// env is what every benchmark shares: the binary, a work folder, clips.
type env struct {
	dir    string
	bin    string
	ffmpeg string // ffmpeg's version line
	clips  map[string]string
}

func newEnv(ctx context.Context, dir string) (*env, error) {
	e := &env{dir: dir, bin: filepath.Join(dir, "ittybit"), clips: map[string]string{}}
	build := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/ittybit")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w (run from the repository root)", err)
	}
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-version").Output()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg: %w", err)
	}
	e.ffmpeg = strings.SplitN(string(out), "\n", 2)[0]
	return e, nil
}

// clip returns a 1080p30 test clip with sound of the given length.
func (e *env) clip(ctx context.Context, seconds int) (string, error) {
	name := fmt.Sprintf("clip%ds.mov", seconds)
	if p, ok := e.clips[name]; ok {
		return p, nil
	}
	p := filepath.Join(e.dir, "clips", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	d := strconv.Itoa(seconds)
	// testsrc2 with light noise: a picture that costs an encoder something,
	// as camera footage does (a clean test pattern encodes unrealistically
	// fast), at a camera-like bitrate (about 6 Mbit/s, capped at 12).
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration="+d+",noise=alls=6:allf=t",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+d,
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-maxrate", "12M", "-bufsize", "24M",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", p)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make clip: %v: %s", err, out)
	}
	e.clips[name] = p
	return p, nil
}

// proc is an ittybit process started by a benchmark.
type proc struct {
	cmd  *exec.Cmd
	log  string
	url  string
	done chan struct{}
}

// start runs `ittybit args…` with the benchmark credentials and waits for
// its "server started" or "registered" log line.
func (e *env) start(ctx context.Context, name string, extraEnv []string, args ...string) (*proc, error) {
	var wrap []string
	if len(args) > 0 && args[0] == "server" {
		wrap = serverWrap
	}
	return e.startWrapped(ctx, name, wrap, extraEnv, args...)
}

// startWrapped is start with the process run under wrap (taskset …) when
// wrap is not empty. Its --data folder starts empty: every process the
// bench starts is new, even in a -work folder used before (a server that
// found the last run's tasks answered their Idempotency-Keys as replays).
func (e *env) startWrapped(ctx context.Context, name string, wrap, extraEnv []string, args ...string) (*proc, error) {
	return e.startProgram(ctx, e.bin, name, wrap, extraEnv, args...)
}

// startProgram is startWrapped for another program than ittybit (one that
// logs the same "server started" line).
func (e *env) startProgram(ctx context.Context, bin, name string, wrap, extraEnv []string, args ...string) (*proc, error) {
	for i, a := range args {
		if a == "--data" && i+1 < len(args) {
			if err := os.RemoveAll(args[i+1]); err != nil {
				return nil, err
			}
		}
	}
	p := &proc{log: filepath.Join(e.dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if len(wrap) > 0 {
		p.cmd = exec.Command(wrap[0], append(append(wrap[1:len(wrap):len(wrap)], bin), args...)...)
	} else {
		p.cmd = exec.Command(bin, args...)
	}
	p.cmd.Env = append(append(os.Environ(), "ITTYBIT_API_KEY="+apiKey, "ITTYBIT_NODE_TOKEN="+nodeToken), extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if addr, ok := logField(p.log, "server started", "http"); ok {
			p.url = "http://" + addr
			return p, nil
		}
		if _, ok := logField(p.log, "registered", "msg"); ok {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited: see %s", name, p.log)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.stop()
	return nil, fmt.Errorf("%s did not start: see %s", name, p.log)
}

// logField finds the first JSON log line with this msg and returns a field.
func logField(path, msg, field string) (string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			v, _ := line[field].(string)
			return v, true
		}
	}
	return "", false
}

// waitReady polls /readyz.
func (p *proc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after a minute: see %s", p.log)
		}
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("process exited: see %s", p.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// fileServer serves a folder on loopback until ctx ends.
func fileServer(ctx context.Context, dir string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return "http://" + ln.Addr().String(), nil
}

// rssParts reads a process's resident memory split into anonymous (the Go
// heap, mostly) and file-backed (mapped files: Raft's bolt database).
func rssParts(pid int) (anon, file int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		var kb int64
		switch {
		case strings.HasPrefix(l, "RssAnon:"):
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "RssAnon:")), "%d", &kb)
			anon = kb * 1024
		case strings.HasPrefix(l, "RssFile:"):
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "RssFile:")), "%d", &kb)
			file = kb * 1024
		}
	}
	return anon, file
}

// procStats reads a process's CPU seconds and peak RSS from /proc.
func procStats(pid int) (cpu float64, peakRSS int64) {
	user, sys, _ := procCPU(pid)
	cpu = user + sys
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &peakRSS)
				peakRSS *= 1024
			}
		}
	}
	return cpu, peakRSS
}

// procIO returns what /proc/PID/io counts for a process (its threads
// together): read and write system calls (recv and send included) and
// the bytes they moved; zeros when it cannot be read.
func procIO(pid int) (syscr, syscw, rchar, wchar float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, 0, 0
	}
	for line := range strings.Lines(string(data)) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "syscr":
			syscr = n
		case "syscw":
			syscw = n
		case "rchar":
			rchar = n
		case "wchar":
			wchar = n
		}
	}
	return syscr, syscw, rchar, wchar
}

// procSwitches returns a process's context switches, voluntary and not,
// its live threads together.
func procSwitches(pid int) (switches float64) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, path := range tasks {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // a thread gone meanwhile
		}
		for line := range strings.Lines(string(data)) {
			name, v, ok := strings.Cut(line, ":")
			if ok && (name == "voluntary_ctxt_switches" || name == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				switches += n
			}
		}
	}
	return switches
}

// procCPU reads a process's user and system CPU seconds, and its minor
// page faults, from /proc.
func procCPU(pid int) (user, sys, faults float64) {
	return statCPU(fmt.Sprintf("/proc/%d/stat", pid))
}

// monitorCPU reads the user and system CPU seconds of a Go process's
// monitor thread (sysmon): the first thread the runtime starts, before
// any other (runtime.main), so the second-lowest id among its threads.
func monitorCPU(pid int) float64 {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	if len(tids) < 2 {
		return 0
	}
	slices.Sort(tids)
	user, sys, _ := statCPU(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tids[1]))
	return user + sys
}

// statCPU reads the user and system CPU seconds and the minor page faults
// of a /proc stat file (a process's or a thread's).
func statCPU(path string) (user, sys, faults float64) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) > 12 {
		faults, _ = strconv.ParseFloat(fields[7], 64)
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		user, sys = ut/100, st/100 // clock ticks (USER_HZ is 100 on Linux)
	}
	return user, sys, faults
}
