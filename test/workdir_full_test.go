package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// tinyWorkDir is the size of the full agent's work folder: less than the
// source, so the download fills it.
const tinyWorkDir = "256k"

// tmpfsWrap returns a command prefix that runs a program with a fresh
// tmpfs of size mounted on dir, in a mount namespace of its own (through
// a user namespace when not root), or skips the test where neither works.
func tmpfsWrap(t *testing.T, dir, size string) []string {
	t.Helper()
	script := `mount -t tmpfs -o size=` + size + ` ittybit-test "$0" && exec "$@"`
	for _, flags := range [][]string{{"--user", "--map-root-user", "--mount"}, {"--mount"}} {
		wrap := append(append([]string{"unshare"}, flags...), "--propagation", "private", "sh", "-c", script, dir)
		out, err := exec.Command(wrap[0], append(wrap[1:len(wrap):len(wrap)], "true")...).CombinedOutput()
		if err == nil {
			return wrap
		}
		t.Logf("unshare %v: %v %s", flags, err, bytes.TrimSpace(out))
	}
	t.Skip("cannot mount a small tmpfs here (no unshare with user or mount namespaces); the full-disk test needs one")
	return nil
}

// TestWorkDirFull runs two agents, one (x) with a work folder on a 256 KiB
// filesystem, too small for the sources. Each task whose step lands on x
// fails there with internal ("no space left on device", not fetch_failed:
// the origin is fine), is retried on the other agent, and completes; x
// stays registered and ready.
func TestWorkDirFull(t *testing.T) {
	t.Parallel()
	xDir := t.TempDir()
	xWork := filepath.Join(xDir, "work")
	if err := os.MkdirAll(xWork, 0o700); err != nil {
		t.Fatal(err)
	}
	wrap := tmpfsWrap(t, xWork, tinyWorkDir)

	src := clips.Path(t, encoderstest.Long)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "clip.mov", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(files.Close)

	storageDir := filepath.Join(t.TempDir(), "files")
	srv := mustServer(t, "s", append([]string{"--bootstrap", "--allow-private-inputs", "--storage", storageDir}, schedFlags...)...)
	mustReady(t, srv)
	env := append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey, "ITTYBIT_NODE_TOKEN="+testNodeToken)
	agentProc := func(name, dir, work string, wrap []string) *proc {
		p := &proc{name: name, dir: dir, env: env, wrap: wrap}
		p.args = []string{"agent", "--name", name, "--work-dir", work, "--storage", storageDir, "--server", srv.URL(), "--allow-private-inputs", "--slots", "2"}
		p.mustStart(t)
		return p
	}
	x := agentProc("x", xDir, xWork, wrap)
	yDir := t.TempDir()
	agentProc("y", yDir, filepath.Join(yDir, "work"), nil)
	nodes := client.New(srv.URL(), testNodeToken)
	waitReadyAgents(t, nodes, 2)

	// Tasks in pairs, at once: placement spreads them over both agents,
	// so x gets some; more pairs in the unlikely case it got none.
	users := client.New(srv.URL(), testAPIKey)
	start := time.Now()
	var ids []string
	final := map[string]*api.Task{}
	failedOnX := map[string]string{} // task → step
	full := 0
	for pair := 0; pair < 5 && len(failedOnX) == 0; pair++ {
		var batch []string
		for range 2 {
			task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindImage, Input: files.URL + "/clip.mov"}, client.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, task.ID)
		}
		for _, id := range batch {
			task := waitTask(t, users, id, 3*time.Minute)
			if task.Status != api.TaskCompleted {
				t.Errorf("task %s: %s %+v, want completed", id, task.Status, task.Error)
			}
			final[id] = task
		}
		ids = append(ids, batch...)
		// What failed on x, from its log: internal, for want of space.
		full = 0
		for _, line := range stepLogLines(t, x) {
			if line.Msg != "step failed" {
				continue
			}
			failedOnX[line.TaskID] = line.Step
			if strings.Contains(line.Err, "no space left on device") && strings.HasPrefix(line.Err, string(ittybit.ErrInternal)+":") && line.Retryable {
				full++
			} else {
				t.Errorf("x: step %s of %s failed with %q (retryable %v); want internal, no space left, retryable", line.Step, line.TaskID, line.Err, line.Retryable)
			}
		}
	}
	took := time.Since(start)
	if len(failedOnX) == 0 {
		t.Fatal("no step failed on x: the test did not exercise a full work folder")
	}
	retried := 0
	for id, step := range failedOnX {
		for _, s := range final[id].Steps {
			if s.Kind != step {
				continue
			}
			if s.Node == nil || *s.Node != "y" || s.Attempt < 2 {
				t.Errorf("task %s step %s: attempt %d on %v, want a later attempt on y", id, step, s.Attempt, s.Node)
			} else {
				retried++
			}
		}
	}
	list, err := nodes.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := countReady(list); n != 2 {
		t.Errorf("%d agents ready after the failures, want 2 (x too): %+v", n, list)
	}

	f := figures{
		heading: "## TestWorkDirFull: an agent's work folder fills up",
		intro: "`test/workdir_full_test.go`. One server and two agents; agent x runs in its own mount namespace (`unshare`) with\n" +
			"its work folder on a " + tinyWorkDir + " tmpfs, smaller than the 2 MiB source. Image tasks are submitted two at a time.",
	}
	f.add("tasks", "%d submitted, %d completed, in %s", len(ids), len(final), seconds(took))
	f.add("steps that failed on x", "%d, each internal: no space left on device (retryable), none fetch_failed", full)
	f.add("retried", "%d of them on y (a retry avoids the node that failed it), all completed", retried)
	f.add("x afterwards", "registered and ready")
	f.write(t)
}

// waitReadyAgents waits until the leader knows n ready agents.
func waitReadyAgents(t *testing.T, nodes *client.Client, n int) {
	t.Helper()
	wait.For(t, fmt.Sprintf("%d ready agents", n), time.Minute, func() error {
		list, err := nodes.Nodes(context.Background())
		if err != nil {
			return err
		}
		if ready := countReady(list); ready != n {
			return fmt.Errorf("%d ready: %+v", ready, list)
		}
		return nil
	})
}

func countReady(list []api.NodeInfo) int {
	n := 0
	for _, node := range list {
		if node.Status == "ready" {
			n++
		}
	}
	return n
}

// stepLogLine is a JSON log line of an ittybit process, as far as the tests
// read it.
type stepLogLine struct {
	Msg       string `json:"msg"`
	TaskID    string `json:"task_id"`
	Step      string `json:"step"`
	Err       string `json:"err"`
	Retryable bool   `json:"retryable"`
}

// stepLogLines reads a process's current log.
func stepLogLines(t *testing.T, p *proc) []stepLogLine {
	t.Helper()
	data, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []stepLogLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l stepLogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}
