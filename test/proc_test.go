package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/internal/wait"
)

// Credentials every test process gets through its environment.
const (
	testAPIKey    = "systest-api-key"
	testNodeToken = "systest-node-token"
)

// startTimeout bounds how long a process may take to bind its ports.
const startTimeout = 30 * time.Second

// proc is one ittybit process (`ittybit server` or `ittybit dev`) started
// by a test, with its output in a log file in its folder. Its addresses are
// learned from its "server started" log line, so ports are bound by the
// process itself (127.0.0.1:0), not picked by the test and raced for; a
// restart binds the same ones again.
type proc struct {
	name string
	args []string // the command line, without --http and --raft
	dir  string   // the process's folder: data/ and log files
	env  []string
	// wrap, when set, is a command that runs ittybit: the binary's path
	// and args are appended to it (unshare, for a tiny work folder).
	wrap []string
	// bin, when set, is the ittybit binary to run (another release's);
	// the one built for the tests otherwise.
	bin      string
	HTTPAddr string
	RaftAddr string

	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	log    string        // the current log file
	starts int
	// tmp is the process's $TMPDIR, removed when the test ends: what a
	// killed process leaves there (its plugins' sockets) goes with it.
	// Short, as a Unix socket's path must be.
	tmp string
}

// URL is the process's API base URL.
func (p *proc) URL() string { return "http://" + p.HTTPAddr }

// DataDir is the process's data folder.
func (p *proc) DataDir() string { return filepath.Join(p.dir, "data") }

// mustServer starts `ittybit server --node-id name` with a data folder in a
// fresh temporary folder, plus extra flags; the process is killed at the
// end of the test.
func mustServer(tb testing.TB, name string, extra ...string) *proc {
	tb.Helper()
	return mustServerOf(tb, "", name, extra...)
}

// mustServerOf is mustServer running the binary bin ("": the one built
// for the tests).
func mustServerOf(tb testing.TB, bin, name string, extra ...string) *proc {
	tb.Helper()
	p := &proc{name: name, dir: tb.TempDir(), bin: bin}
	p.args = append([]string{"server", "--node-id", name, "--data", p.DataDir(), "--log-level", "info"}, extra...)
	p.env = append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey, "ITTYBIT_NODE_TOKEN="+testNodeToken)
	p.mustStart(tb)
	return p
}

// mustDev starts `ittybit dev` with its data in a temporary folder, plus
// extra flags.
func mustDev(tb testing.TB, extra ...string) *proc {
	tb.Helper()
	p := &proc{name: "dev", dir: tb.TempDir()}
	p.args = append([]string{"dev", "--data", p.DataDir()}, extra...)
	p.env = append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey)
	p.mustStart(tb)
	return p
}

// mustStart starts the process (again), on its earlier addresses if it
// had any, and waits until it has bound them.
func (p *proc) mustStart(tb testing.TB) {
	tb.Helper()
	if p.running() {
		tb.Fatalf("%s: already running", p.name)
	}
	p.starts++
	httpAddr, raftAddr := "127.0.0.1:0", "127.0.0.1:0"
	if p.HTTPAddr != "" {
		httpAddr, raftAddr = p.HTTPAddr, p.RaftAddr
	}
	args := append([]string{}, p.args...)
	agent := args[0] == "agent"
	if !agent {
		args = append(args, "--http", httpAddr)
	}
	if args[0] == "server" {
		args = append(args, "--raft", raftAddr)
	}
	p.log = p.logs()[p.starts-1]
	logf, err := os.Create(p.log)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	bin := ittybitBin
	if p.bin != "" {
		bin = p.bin
	}
	if len(p.wrap) > 0 {
		p.cmd = exec.Command(p.wrap[0], append(append(p.wrap[1:len(p.wrap):len(p.wrap)], bin), args...)...)
	} else {
		p.cmd = exec.Command(bin, args...)
	}
	if p.tmp == "" {
		if p.tmp, err = os.MkdirTemp("", "it"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(p.tmp) })
	}
	p.cmd.Env = append(slices.Clip(p.env), "TMPDIR="+p.tmp)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	setDeathSignal(p.cmd)
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	if p.starts == 1 {
		tb.Cleanup(func() {
			if p.running() {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
			for _, log := range p.logs() {
				if data, _ := os.ReadFile(log); bytes.Contains(data, []byte("WARNING: DATA RACE")) {
					tb.Errorf("%s: data race reported in %s:\n%s", p.name, filepath.Base(log), data)
				}
			}
			if tb.Failed() {
				tb.Logf("%s: last lines of %s:\n%s", p.name, filepath.Base(p.log), p.tail(40))
			}
		})
	}

	deadline := time.Now().Add(startTimeout)
	for {
		if agent && p.logged("registered") {
			return
		}
		if h, r, ok := p.boundAddrs(); ok && !agent {
			p.HTTPAddr, p.RaftAddr = h, r
			return
		}
		if !p.running() {
			tb.Fatalf("%s exited while starting (%s):\n%s", p.name, p.cmd.ProcessState, p.tail(40))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not report its addresses within %v:\n%s", p.name, startTimeout, p.tail(40))
		}
		time.Sleep(20 * time.Millisecond) // polling the log file
	}
}

// boundAddrs reads the HTTP and Raft addresses from the current log's
// "server started" line (JSON, from log/slog).
func (p *proc) boundAddrs() (httpAddr, raftAddr string, ok bool) {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return "", "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			HTTP string `json:"http"`
			Raft string `json:"raft"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "server started" && line.HTTP != "" {
			return line.HTTP, line.Raft, true
		}
	}
	return "", "", false
}

// logged reports whether the current log has a line with this message.
func (p *proc) logged(msg string) bool {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return false
	}
	return bytes.Contains(data, []byte(`"msg":"`+msg+`"`))
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL: no shutdown of any kind.
func (p *proc) Kill(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// Stop ends the process with SIGTERM and waits for a clean exit.
func (p *proc) Stop(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("stop %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		tb.Fatalf("%s did not stop within 30 s of SIGTERM:\n%s", p.name, p.tail(40))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		tb.Errorf("%s exited with status %d after SIGTERM:\n%s", p.name, code, p.tail(20))
	}
}

// logs returns the log files of every start.
func (p *proc) logs() []string {
	var out []string
	for i := 1; i <= p.starts; i++ {
		out = append(out, filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, i)))
	}
	return out
}

// tail returns the last n lines of the current log.
func (p *proc) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mustReady waits until each process answers GET /readyz with 200.
func mustReady(tb testing.TB, ps ...*proc) {
	tb.Helper()
	for _, p := range ps {
		wait.For(tb, p.name+" /readyz", startTimeout, func() error {
			resp, err := http.Get(p.URL() + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
}
