package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// readmeBlock returns the shell block of README.md's "Your first task" that
// posts the task: from the TASK assignment to the curl command.
func readmeBlock(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)(TASK='\{.*?-d "\$TASK")`).FindSubmatch(data)
	if m == nil {
		t.Fatal(`README.md has no TASK='{…}' … curl … -d "$TASK" block`)
	}
	return string(m[1])
}

// TestREADMEFirstTask follows "Your first task" as a new user would: start
// `ittybit dev`, serve a clip with python3's file server, post the README's
// curl command, follow the task with `ittybit tasks wait`, and fetch the
// result from its signed URL.
func TestREADMEFirstTask(t *testing.T) {
	dev := mustDev(t)
	mustReady(t, dev)

	// python3 -m http.server, as the README says, on a free port.
	dir := t.TempDir()
	data, err := os.ReadFile(clips.Path(t, encoderstest.SmallHD))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clip.mov"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fs := exec.Command("python3", "-m", "http.server", itoa(port), "--bind", "127.0.0.1", "--directory", dir)
	setDeathSignal(fs)
	if err := fs.Start(); err != nil {
		t.Fatalf("python3 -m http.server: %v (make deps installs python3)", err)
	}
	t.Cleanup(func() { _ = fs.Process.Kill(); _ = fs.Wait() })
	wait.For(t, "the file server", 10*time.Second, func() error {
		resp, err := http.Head("http://127.0.0.1:" + itoa(port) + "/clip.mov")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	block := readmeBlock(t)
	block = strings.ReplaceAll(block, "http://127.0.0.1:8000/", "http://127.0.0.1:"+itoa(port)+"/")
	block = strings.ReplaceAll(block, "http://127.0.0.1:8080/", dev.URL()+"/")
	cmd := exec.Command("bash", "-c", block)
	cmd.Env = append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's curl: %v\n%s", err, out)
	}
	var task api.Task
	if err := json.Unmarshal(out, &task); err != nil || task.Status != api.TaskQueued {
		t.Fatalf("the README's curl answered %s (%v)", out, err)
	}

	wait := exec.Command(ittybitBin, "tasks", "wait", task.ID)
	wait.Env = append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey, "ITTYBIT_API_URL="+dev.URL())
	var stderr bytes.Buffer
	wait.Stderr = &stderr
	final, err := wait.Output()
	if err != nil {
		t.Fatalf("ittybit tasks wait: %v\n%s\n%s", err, final, stderr.String())
	}
	if err := json.Unmarshal(final, &task); err != nil || task.Status != api.TaskCompleted || task.Output == nil {
		t.Fatalf("final task: %s", final)
	}
	if !strings.Contains(stderr.String(), "100%") {
		t.Errorf("tasks wait showed no progress:\n%s", stderr.String())
	}
	resp, err := http.Get(*task.Output)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := filepath.Join(t.TempDir(), "out.mp4")
	f, _ := os.Create(got)
	f.ReadFrom(resp.Body)
	f.Close()
	if v := encoderstest.Probe(t, got).Video(); v == nil || v.Width != 1280 || v.Height != 720 || v.CodecName != "h264" {
		t.Errorf("out.mp4: %+v", v)
	}
}

// TestCLICloud runs the seed's CLI example with --cloud against ittybit dev.
func TestCLICloud(t *testing.T) {
	dev := mustDev(t)
	mustReady(t, dev)
	dir := t.TempDir()
	data, _ := os.ReadFile(clips.Path(t, encoderstest.SmallHD))
	os.WriteFile(filepath.Join(dir, "upload.mov"), data, 0o644)
	srv := http.Server{Handler: http.FileServer(http.Dir(dir))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ittybitBin, "video", "-i", "http://"+ln.Addr().String()+"/upload.mov",
		"--width", "640", "--height", "360", "--format", "mp4", "--quality", "high", "--cloud", "--json")
	cmd.Env = append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey, "ITTYBIT_API_URL="+dev.URL())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ittybit video --cloud: %v\n%s", err, out)
	}
	var task api.Task
	if err := json.Unmarshal(out, &task); err != nil || task.Status != api.TaskCompleted {
		t.Fatalf("--json printed %s", out)
	}
	var file struct{ Width, Height int }
	json.Unmarshal(task.Steps[3].Output, &file)
	if file.Width != 640 || file.Height != 360 {
		t.Errorf("delivered %dx%d", file.Width, file.Height)
	}

	// A bad option fails fast with the API's message and status 2.
	bad := exec.Command(ittybitBin, "video", "-i", "http://example.com/a.mov", "--fps", "99", "--cloud")
	bad.Env = cmd.Env
	msg, err := bad.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(msg), "invalid_option: fps 99") {
		t.Errorf("bad option: %v\n%s", err, msg)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestREADMEMakeTargets: every target `make help` lists (a Makefile line
// "name: … ## what it does") is named in README.md as `make name`.
func TestREADMEMakeTargets(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	targets := regexp.MustCompile(`(?m)^([a-z-]+):.*## `).FindAllSubmatch(mk, -1)
	if len(targets) == 0 {
		t.Fatal("the Makefile lists no targets with ## help")
	}
	for _, m := range targets {
		name := string(m[1])
		if !regexp.MustCompile("`make " + regexp.QuoteMeta(name) + "[` ]").Match(readme) {
			t.Errorf("README.md never names `make %s`, a target make help lists", name)
		}
	}
}
