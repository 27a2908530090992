package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// The metric names of README.md's Monitoring section, by component.
var (
	controlPlaneMetrics = []string{
		"ittybit_tasks_created_total", "ittybit_tasks_finished_total", "ittybit_queue_depth", "ittybit_queue_depth_by_priority",
		"ittybit_step_wait_seconds", "ittybit_step_duration_seconds", "ittybit_nodes", "ittybit_raft_leader",
		"ittybit_raft_apply_seconds", "ittybit_http_requests_total", "ittybit_http_request_duration_seconds",
		"ittybit_tasks_retired_total", "ittybit_archive_write_failures_total", "ittybit_archive_failing", "ittybit_tasks_retire_due",
	}
	agentMetrics = []string{
		"ittybit_agent_encoded_media_seconds_total", "ittybit_agent_encoded_frames_total", "ittybit_agent_sessions_active",
		"ittybit_agent_sessions_capacity", "ittybit_agent_steps_total", "ittybit_agent_bytes_total", "ittybit_agent_encoder_available",
	}
	// startMetrics are the contract metrics that exist before any task:
	// the others have a label (an encoder) only an encode gives them.
	notAtStart = []string{"ittybit_step_duration_seconds", "ittybit_agent_encoded_media_seconds_total", "ittybit_agent_encoded_frames_total"}
)

// mustPrometheusTool finds a program the tests need; a missing one fails the test
// with what installs it, never skips it.
func mustPrometheusTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not found on PATH: run `make deps`, which installs Debian's prometheus package (apt-get install prometheus) for prometheus and promtool", name)
	}
	return path
}

// metrics is one scrape of a /metrics endpoint: its text, and its samples
// by series ("name{a=\"1\",b=\"2\"}", labels in the order exposed, which
// client_golang sorts by name).
type metrics struct {
	text    string
	samples map[string]float64
	types   map[string]string // metric family → type, from # TYPE
}

// scrape reads url (a /metrics endpoint).
func scrape(tb testing.TB, url string) metrics {
	tb.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	m := metrics{text: string(body), samples: map[string]float64{}, types: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			m.types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("scrape %s: bad sample %q", url, line)
		}
		m.samples[line[:i]] = v
	}
	return m
}

// series names a sample: name and label pairs, sorted by label name.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// value returns a sample, failing the test when it is not there.
func (m metrics) value(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	s := series(name, labels...)
	v, ok := m.samples[s]
	if !ok {
		tb.Fatalf("no sample %s", s)
	}
	return v
}

// sum adds the samples of a name (a counter or gauge; for a histogram
// pass name_count) whose labels include the given ones.
func (m metrics) sum(name string, labels ...string) float64 {
	total := 0.0
	for s, v := range m.samples {
		if s != name && !strings.HasPrefix(s, name+"{") {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(s, fmt.Sprintf("%s=%q", labels[i], labels[i+1])) {
				match = false
			}
		}
		if match {
			total += v
		}
	}
	return total
}

// has reports whether a metric family is exposed with at least one
// sample.
func (m metrics) has(name string) bool {
	suffix := ""
	if m.types[name] == "histogram" {
		suffix = "_count"
	}
	for s := range m.samples {
		if s == name+suffix || strings.HasPrefix(s, name+suffix+"{") {
			return true
		}
	}
	return false
}

// mustLint runs `promtool check metrics` on a scrape: no problem allowed.
func mustLint(tb testing.TB, what string, m metrics) {
	tb.Helper()
	cmd := exec.Command(mustPrometheusTool(tb, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(m.text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		tb.Errorf("promtool check metrics on %s: %v\n%s", what, err, out)
	}
}

// serveClips serves clips over HTTP as the tasks' inputs.
func serveClips(tb testing.TB, clips map[string]string) *httptest.Server {
	tb.Helper()
	dir := tb.TempDir()
	for name, src := range clips {
		if err := os.Link(src, filepath.Join(dir, name)); err != nil {
			data, rerr := os.ReadFile(src)
			if rerr != nil {
				tb.Fatal(rerr)
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	tb.Cleanup(srv.Close)
	return srv
}

// logLine is one JSON log line of a process.
type logLine map[string]any

// jsonLogs reads every JSON line of a process's logs.
func jsonLogs(tb testing.TB, p *proc) []logLine {
	tb.Helper()
	var out []logLine
	for _, path := range p.logs() {
		data, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue // not a log line (dev prints its API key)
			}
			if dup := duplicateKeys(sc.Bytes()); len(dup) > 0 {
				tb.Errorf("%s: log line with %q twice: %s", p.name, dup, sc.Bytes())
			}
			out = append(out, l)
		}
	}
	return out
}

// duplicateKeys returns the top-level keys a JSON object holds more than
// once, which log/slog writes when With and a call name the same one.
func duplicateKeys(line []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(line))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	var dup []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return dup
		}
		key, _ := t.(string)
		if seen[key] {
			dup = append(dup, key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return dup
		}
	}
	return dup
}

// checkTaskLogs checks ARCHITECTURE.md's rule: every log line about a task
// carries task_id, step_id and node_id. It returns the messages of the
// lines about tasks.
func checkTaskLogs(tb testing.TB, p *proc) []string {
	tb.Helper()
	var msgs []string
	for _, l := range jsonLogs(tb, p) {
		_, task := l["task_id"]
		_, step := l["step_id"]
		_, node := l["node_id"]
		if !task && !step {
			continue
		}
		if !(task && step && node) {
			tb.Errorf("%s: a log line about a task lacks task_id, step_id or node_id: %v", p.name, l)
		}
		if msg, _ := l["msg"].(string); !slices.Contains(msgs, msg) {
			msgs = append(msgs, msg)
		}
	}
	return msgs
}

// TestServerAndAgentMetrics runs a task through `ittybit server` and a
// separate `ittybit agent --metrics`, and checks each /metrics: clean under
// promtool, each component's contract metrics present on its own endpoint
// only, and moving with the task. Both processes' log lines about the
// task carry its ids.
func TestServerAndAgentMetrics(t *testing.T) {
	mustPrometheusTool(t, "promtool")
	srv := mustServer(t, "s", "--bootstrap", "--allow-private-inputs")
	mustReady(t, srv)
	ag := &proc{name: "x", dir: t.TempDir(), env: append(os.Environ(), "ITTYBIT_NODE_TOKEN="+testNodeToken)}
	ag.args = []string{"agent", "--name", "x", "--server", srv.URL(), "--work-dir", filepath.Join(ag.dir, "work"),
		"--storage", filepath.Join(srv.DataDir(), "files"), "--allow-private-inputs", "--metrics", "127.0.0.1:0"}
	ag.mustStart(t)
	agentURL := "http://" + logAttr(t, ag, "serving metrics", "addr") + "/metrics"
	serverURL := srv.URL() + "/metrics"

	before := map[string]metrics{"server": scrape(t, serverURL), "agent": scrape(t, agentURL)}
	for what, m := range before {
		mustLint(t, what+" at start", m)
	}
	for _, name := range agentMetrics {
		if before["server"].has(name) {
			t.Errorf("the server exposes the agent's %s", name)
		}
		if !slices.Contains(notAtStart, name) && !before["agent"].has(name) {
			t.Errorf("the agent lacks %s at start", name)
		}
	}
	for _, name := range controlPlaneMetrics {
		if before["agent"].has(name) {
			t.Errorf("the agent exposes the control plane's %s", name)
		}
		if !slices.Contains(notAtStart, name) && !before["server"].has(name) {
			t.Errorf("the server lacks %s at start", name)
		}
	}

	files := serveClips(t, map[string]string{"silent.mp4": clips.Path(t, encoderstest.Silent)})
	users := client.New(srv.URL(), testAPIKey)
	task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: "video", Input: files.URL + "/silent.mp4"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done, err := users.Wait(ctx, task.ID, 100*time.Millisecond, nil)
	if err != nil || done.Status != api.TaskCompleted {
		t.Fatalf("task: %v %+v", err, done)
	}

	s, a := scrape(t, serverURL), scrape(t, agentURL)
	mustLint(t, "server after a task", s)
	mustLint(t, "agent after a task", a)
	for _, name := range controlPlaneMetrics {
		if !s.has(name) {
			t.Errorf("the server lacks %s after a task", name)
		}
	}
	for _, name := range agentMetrics {
		if !a.has(name) {
			t.Errorf("the agent lacks %s after a task", name)
		}
	}
	if got := s.value(t, "ittybit_tasks_created_total", "kind", "video"); got != 1 {
		t.Errorf("tasks created %v, want 1", got)
	}
	if got := s.value(t, "ittybit_tasks_finished_total", "kind", "video", "status", "completed"); got != 1 {
		t.Errorf("tasks finished %v, want 1", got)
	}
	if got := s.value(t, "ittybit_step_wait_seconds_count"); got < 4 {
		t.Errorf("step waits %v, want one per step: 4 (more after a redelivery)", got)
	}
	if got := s.value(t, "ittybit_step_duration_seconds_count", "step_kind", "video", "encoder", "libx264"); got != 1 {
		t.Errorf("video step durations under libx264: %v, want 1", got)
	}
	if got := a.value(t, "ittybit_agent_encoded_media_seconds_total", "kind", "video", "codec", "h264", "encoder", "libx264"); got < 1.9 {
		t.Errorf("media seconds %v, want the clip's 2", got)
	}
	if got := a.value(t, "ittybit_agent_encoded_frames_total", "codec", "h264", "encoder", "libx264"); got < 50 {
		t.Errorf("frames %v, want about 60", got)
	}
	if got := a.value(t, "ittybit_agent_steps_total", "step_kind", "encode", "result", "completed"); got != 1 {
		t.Errorf("encode steps %v, want 1", got)
	}
	for _, dir := range []string{"ingest", "upload"} {
		if got := a.value(t, "ittybit_agent_bytes_total", "direction", dir); got <= 0 {
			t.Errorf("%s bytes %v", dir, got)
		}
	}
	if got := a.value(t, "ittybit_agent_sessions_active", "encoder", "libx264"); got != 0 {
		t.Errorf("sessions %v after the encode, want 0", got)
	}

	for _, p := range []*proc{srv, ag} {
		msgs := checkTaskLogs(t, p)
		t.Logf("%s: lines about the task: %q", p.name, msgs)
	}
	if msgs := checkTaskLogs(t, srv); !slices.Contains(msgs, "task queued") || !slices.Contains(msgs, "task finished") {
		t.Errorf("server lines about the task %q: want task queued and task finished", msgs)
	}
	if msgs := checkTaskLogs(t, ag); !slices.Contains(msgs, "step started") || !slices.Contains(msgs, "step completed") {
		t.Errorf("agent lines about the task %q: want step started and step completed", msgs)
	}
}

// logAttr returns an attribute of the first log line with msg, waiting
// for it.
func logAttr(tb testing.TB, p *proc, msg, attr string) string {
	tb.Helper()
	var v string
	wait.For(tb, fmt.Sprintf("%s: %q in the log", p.name, msg), startTimeout, func() error {
		for _, l := range jsonLogs(tb, p) {
			if l["msg"] == msg {
				if s, ok := l[attr].(string); ok && s != "" {
					v = s
					return nil
				}
			}
		}
		return fmt.Errorf("no %q line with %s", msg, attr)
	})
	return v
}
