package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/plugins/builtin"
)

// osProc is a process as /proc shows it.
type osProc struct {
	pid, ppid int
	comm      string
	state     byte // 'Z' for a zombie: dead, not yet reaped
}

// processes reads every process of /proc.
func processes(t *testing.T) map[int]osProc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	out := map[int]osProc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it just exited
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		out[pid] = osProc{pid: pid, ppid: ppid, comm: s[open+1 : end], state: fields[0][0]}
	}
	return out
}

// descendants returns the live processes below pid.
func descendants(all map[int]osProc, pid int) []osProc {
	var out []osProc
	for _, p := range all {
		if p.ppid == pid && p.state != 'Z' {
			out = append(out, p)
			out = append(out, descendants(all, p.pid)...)
		}
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// TestSIGKILLedCLILeavesNoProcess kills `ittybit video` (local mode) with
// SIGKILL in the middle of an encode, which no cleanup code sees, and
// checks that its plugin processes (the hardware ones this machine's device
// nodes allow; the software plugin runs in the CLI's own process) and the
// ffmpeg died with it.
func TestSIGKILLedCLILeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ittybit and encodes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ittybit")
	build := exec.Command("go", "build", "-o", bin, "../cmd/ittybit")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	in := clips.Path(t, encoderstest.Long)

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "video", "-i", in, "-o", filepath.Join(dir, "out.mp4"), "--codec", "h265", "--quality", "very_high")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()

	// Mid-encode: an ffmpeg runs under the CLI (its software plugin).
	var tree []osProc
	pollUntil(t, time.Minute, "an ffmpeg under ittybit", func() bool {
		tree = descendants(processes(t), pid)
		for _, p := range tree {
			if p.comm == "ffmpeg" && p.ppid == pid {
				return true
			}
		}
		return false
	})
	var plugins int
	for _, p := range tree {
		if p.ppid == pid && p.comm == "ittybit" {
			plugins++
		}
	}
	if want := len(builtin.Possible(detect.Config{})) - 1; plugins != want {
		t.Errorf("%d plugin processes under ittybit, want the %d hardware ones this machine may use: %+v", plugins, want, tree)
	}

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pollUntil(t, 10*time.Second, "the plugins and ffmpeg to die", func() bool {
		all := processes(t)
		for _, p := range tree {
			if q, ok := all[p.pid]; ok && q.state != 'Z' && q.comm == p.comm {
				return false
			}
		}
		return true
	})
	// Nothing anywhere still runs this test's ittybit binary.
	for p := range processes(t) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if p != os.Getpid() && bytes.HasPrefix(cmdline, []byte(bin+"\x00")) {
			if st := processes(t)[p]; st.state != 'Z' {
				t.Errorf("process %d still runs %s", p, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
	}
	if t.Failed() {
		t.Logf("ittybit's stderr:\n%s", stderr.String())
	}
}
