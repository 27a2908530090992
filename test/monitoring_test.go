package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// The shipped monitoring files, relative to this package.
const (
	prometheusConfig = "../configs/prometheus.yml"
	alertRules       = "../configs/alerts.yml"
	alertTests       = "../configs/alerts_test.yml"
	dashboardFile    = "../configs/grafana/ittybit.json"
)

// promtool runs promtool with args and fails the test when it does.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(mustPrometheusTool(t, "promtool"), args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules: the rules load, and their unit tests (each alert firing
// and not firing) pass; the example scrape config is valid and loads them.
func TestAlertRules(t *testing.T) {
	promtool(t, "check", "rules", alertRules)
	promtool(t, "test", "rules", alertTests)
	promtool(t, "check", "config", prometheusConfig)

	// Every alert has a unit test, and a README entry saying what to do.
	readme := string(mustRead(t, "../README.md"))
	tests := string(mustRead(t, alertTests))
	for _, r := range ruleExprs(t) {
		if !strings.Contains(tests, "alertname: "+r.name) {
			t.Errorf("%s has no test in %s", r.name, alertTests)
		}
		if !strings.Contains(readme, "`"+r.name+"`") {
			t.Errorf("%s is not explained in README.md", r.name)
		}
	}
}

// rule is one alerting rule of alerts.yml.
type rule struct{ name, expr string }

func ruleExprs(t *testing.T) []rule {
	t.Helper()
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(mustRead(t, alertRules), &file); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			out = append(out, rule{r.Alert, r.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("no rules in " + alertRules)
	}
	return out
}

// dashboard is what the tests read of the Grafana dashboard.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(mustRead(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboard checks the dashboard's shape: a Prometheus datasource
// variable every query panel uses, unique panel ids, a query per target,
// panels inside the 24-column grid.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 {
		t.Errorf("title %q uid %q schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	hasVar := slices.ContainsFunc(d.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query string `json:"query"`
	}) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	})
	if !hasVar {
		t.Error("no datasource variable of type prometheus")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%q: grid position %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("%q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("%q: target %+v", p.Title, tg)
			}
		}
	}
	// The panels the issue asks for.
	for _, title := range []string{"Real-time factor by encoder", "Queue depth by step kind", "Step wait percentiles",
		"Step duration percentiles", "Sessions used vs capacity", "Nodes by state", "Step failures by kind", "Raft apply latency"} {
		if !slices.ContainsFunc(d.Panels, func(p panel) bool { return p.Title == title }) {
			t.Errorf("no %q panel", title)
		}
	}
}

// query is one PromQL expression to evaluate, and where it comes from.
type query struct{ from, expr string }

// dashboardQueries returns the dashboard's expressions with Grafana's
// variables replaced as Grafana would for a short range.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", "30s")
			out = append(out, query{"panel " + p.Title + " " + tg.RefID, expr})
		}
	}
	return out
}

// mayBeEmpty are the dashboard queries with no data on a host without
// GPUs after tasks that all succeeded: there is no series to show.
var mayBeEmpty = regexp.MustCompile(`ittybit_gpu_|ittybit_agent_fallbacks_total|ittybit_step_failures_total|ittybit_agent_sessions_capacity > 0`)

// TestMonitoringWithPrometheus runs the shipped monitoring against a real
// Prometheus scraping `ittybit dev` while tasks run: /metrics is clean
// under promtool before, during and after the encodes; every contract
// metric is there and the ones of a task move (created, queued, waits,
// durations, finished, media seconds, frames, sessions); every PromQL
// expression of the dashboard and the alert rules evaluates without error,
// the rules evaluate healthy, and none fires on a healthy node.
func TestMonitoringWithPrometheus(t *testing.T) {
	prom := mustPrometheusTool(t, "prometheus")
	mustPrometheusTool(t, "promtool")
	dev := mustDev(t)
	mustReady(t, dev)
	promURL := mustPrometheus(t, prom, dev.HTTPAddr)
	metricsURL := dev.URL() + "/metrics"

	start := scrape(t, metricsURL)
	mustLint(t, "ittybit dev at start", start)
	for _, name := range append(slices.Clone(controlPlaneMetrics), agentMetrics...) {
		if !slices.Contains(notAtStart, name) && !start.has(name) {
			t.Errorf("%s missing at start", name)
		}
	}
	if got := start.value(t, "ittybit_raft_leader"); got != 1 {
		t.Errorf("raft leader %v, want 1", got)
	}
	if got := start.value(t, "ittybit_nodes", "state", "ready"); got != 1 {
		t.Errorf("ready nodes %v, want 1", got)
	}
	if got := start.value(t, "ittybit_agent_sessions_active", "encoder", "libx264"); got != 0 {
		t.Errorf("sessions %v before any encode", got)
	}

	// Three encodes on the dev agent's two slots: one task's steps wait
	// while the others encode.
	const tasks = 3
	files := serveClips(t, map[string]string{"long.mov": clips.Path(t, encoderstest.Long)})
	users := client.New(dev.URL(), testAPIKey)
	var ids []string
	for range tasks {
		task, err := users.Create(context.Background(), api.CreateTaskRequest{
			Kind: "video", Input: files.URL + "/long.mov",
			Options: mustOptions(t, `{"codec":"h265","quality":"high"}`),
		}, client.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	var wg sync.WaitGroup
	results := make([]*api.Task, tasks)
	for i, id := range ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			results[i], _ = users.Wait(ctx, id, 200*time.Millisecond, nil)
		})
	}
	// During: scrape until the queue held a step and an encode was caught
	// mid-way, with its media time, frames and session counted already.
	var sawQueued, sawEncoding bool
	var during metrics
	deadline := time.Now().Add(4 * time.Minute)
	for !(sawQueued && sawEncoding) && time.Now().Before(deadline) {
		m := scrape(t, metricsURL)
		if m.sum("ittybit_queue_depth") >= 1 {
			sawQueued = true
		}
		active := m.sum("ittybit_agent_sessions_active", "encoder", "libx265")
		media := m.sum("ittybit_agent_encoded_media_seconds_total", "encoder", "libx265")
		frames := m.sum("ittybit_agent_encoded_frames_total", "encoder", "libx265")
		if active >= 1 && media > 0 && frames > 0 && media < tasks*8 && m.sum("ittybit_tasks_finished_total") < tasks {
			if !sawEncoding {
				during = m
			}
			sawEncoding = true
		}
		if m.sum("ittybit_tasks_finished_total") >= tasks {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling /metrics, with a deadline
	}
	if !sawQueued {
		t.Error("ittybit_queue_depth never showed a waiting step")
	}
	if !sawEncoding {
		t.Error("never saw an encode counted while it ran (sessions, media seconds and frames under libx265)")
	} else {
		mustLint(t, "ittybit dev during an encode", during)
	}
	wg.Wait()
	for i, r := range results {
		if r == nil || r.Status != api.TaskCompleted {
			t.Fatalf("task %s: %+v", ids[i], r)
		}
	}

	after := scrape(t, metricsURL)
	mustLint(t, "ittybit dev after the tasks", after)
	for _, name := range append(slices.Clone(controlPlaneMetrics), agentMetrics...) {
		if !after.has(name) {
			t.Errorf("%s missing after the tasks", name)
		}
	}
	// A step taken back and run again (an agent slow to take it in, on a
	// loaded machine) encodes some frames twice, and the counters say so:
	// exact counts hold only when no step was run twice.
	media, frames := within(tasks*8-0.5, tasks*8+0.5), within(tasks*240-30, tasks*240+30)
	if after.value(t, "ittybit_step_wait_seconds_count") > 4*tasks {
		media, frames = within(tasks*8-0.5, tasks*8*2+0.5), within(tasks*240-30, tasks*240*2+30)
		t.Log("a step ran twice: the encoded media and frames may count both runs")
	}
	for _, c := range []struct {
		what string
		got  float64
		ok   func(float64) bool
	}{
		{"tasks created", after.value(t, "ittybit_tasks_created_total", "kind", "video"), eq(tasks)},
		{"tasks finished", after.value(t, "ittybit_tasks_finished_total", "kind", "video", "status", "completed"), eq(tasks)},
		// One per step; a redelivered step waits once more.
		{"step waits", after.value(t, "ittybit_step_wait_seconds_count"), within(4*tasks, 8*tasks)},
		{"video step durations", after.value(t, "ittybit_step_duration_seconds_count", "step_kind", "video", "encoder", "libx265"), eq(tasks)},
		{"media seconds", after.value(t, "ittybit_agent_encoded_media_seconds_total", "kind", "video", "codec", "h265", "encoder", "libx265"), media},
		{"frames", after.value(t, "ittybit_agent_encoded_frames_total", "codec", "h265", "encoder", "libx265"), frames},
		{"sessions after", after.value(t, "ittybit_agent_sessions_active", "encoder", "libx265"), eq(0)},
		{"encode steps", after.value(t, "ittybit_agent_steps_total", "step_kind", "encode", "result", "completed"), eq(tasks)},
		{"ingest bytes", after.value(t, "ittybit_agent_bytes_total", "direction", "ingest"), positive},
		{"upload bytes", after.value(t, "ittybit_agent_bytes_total", "direction", "upload"), positive},
		{"tasks posted", after.value(t, "ittybit_http_requests_total", "route", "POST /tasks", "code", "201"), eq(tasks)},
		{"raft applies", after.value(t, "ittybit_raft_apply_seconds_count"), positive},
	} {
		if !c.ok(c.got) {
			t.Errorf("%s: %v", c.what, c.got)
		}
	}
	if media := during.sum("ittybit_agent_encoded_media_seconds_total", "encoder", "libx265"); sawEncoding && media >= after.sum("ittybit_agent_encoded_media_seconds_total", "encoder", "libx265") {
		t.Errorf("media seconds did not move after mid-encode (%v)", media)
	}

	// Prometheus: once it has scraped the finished tasks, every expression
	// of the dashboard and the rules evaluates.
	wait.For(t, "Prometheus to scrape the finished tasks", time.Minute, func() error {
		res, err := promQuery(promURL, `sum(ittybit_tasks_finished_total{status="completed"})`)
		if err != nil {
			return err
		}
		if len(res) != 1 || res[0].Value[1] != fmt.Sprint(tasks) {
			return fmt.Errorf("got %+v", res)
		}
		return nil
	})
	// A rate needs two samples in its window: a panel may be empty until
	// Prometheus has scraped twice after the tasks (on a fast host the
	// tasks finish within a scrape or two of Prometheus starting).
	var queries []query
	for _, r := range ruleExprs(t) {
		queries = append(queries, query{"alert " + r.name, r.expr})
	}
	dash := dashboardQueries(t)
	wait.For(t, "every panel of the dashboard to have data", time.Minute, func() error {
		var empty []string
		for _, q := range append(queries, dash...) {
			res, err := promQuery(promURL, q.expr)
			if err != nil {
				t.Fatalf("%s: %v\n%s", q.from, err, q.expr)
			}
			if strings.HasPrefix(q.from, "panel") && len(res) == 0 && !mayBeEmpty.MatchString(q.expr) {
				empty = append(empty, q.from+": "+q.expr)
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("no data:\n%s", strings.Join(empty, "\n"))
		}
		return nil
	})

	// The rules as Prometheus runs them: evaluated, healthy, and quiet on
	// a healthy node. A rule evaluated before the first scrape sees no
	// series and may be pending; it must be inactive again once evaluated
	// on the data, and none may fire.
	wait.For(t, "every rule evaluated after the tasks", time.Minute, func() error {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Name           string    `json:"name"`
					Health         string    `json:"health"`
					LastError      string    `json:"lastError"`
					LastEvaluation time.Time `json:"lastEvaluation"`
					State          string    `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := promGet(promURL, "/api/v1/rules", nil, &rules); err != nil {
			return err
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				switch {
				case r.LastEvaluation.IsZero():
					return fmt.Errorf("%s not evaluated yet", r.Name)
				case r.Health != "ok" || r.LastError != "":
					t.Fatalf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
				case r.State == "firing":
					t.Fatalf("rule %s fires on a healthy node", r.Name)
				case r.State != "inactive":
					return fmt.Errorf("rule %s is %s on a healthy node", r.Name, r.State)
				}
			}
		}
		if n != len(queries) {
			return fmt.Errorf("%d rules loaded, want %d", n, len(queries))
		}
		return nil
	})

	msgs := checkTaskLogs(t, dev)
	for _, want := range []string{"task queued", "step started", "step completed", "task finished"} {
		if !slices.Contains(msgs, want) {
			t.Errorf("no %q line about a task in the dev log (have %q)", want, msgs)
		}
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

func within(lo, hi float64) func(float64) bool {
	return func(v float64) bool { return v >= lo && v <= hi }
}

func positive(v float64) bool { return v > 0 }

func mustOptions(t *testing.T, s string) (o encoders.Options) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// mustPrometheus starts Prometheus on a free port with a scrape config
// for target (host:port of a /metrics) every second and the shipped alert
// rules evaluated every second, and waits until it is ready. It returns
// its base URL.
func mustPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: ittybit-dev
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Prometheus cannot report a port it picked: take a free one, and try
	// another should a process grab it first.
	for attempt := 1; attempt <= 3; attempt++ {
		if base, ok := startPrometheus(t, bin, dir, attempt); ok {
			return base
		}
	}
	t.Fatal("prometheus found no free port in 3 tries")
	return ""
}

// startPrometheus starts Prometheus on a free port with the config in dir
// and waits until it is ready; false when the port was taken meanwhile.
func startPrometheus(t *testing.T, bin, dir string, attempt int) (string, bool) {
	t.Helper()
	addr := freePort(t)
	logPath := filepath.Join(dir, fmt.Sprintf("prometheus.%d.log", attempt))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", data)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			data, _ := os.ReadFile(logPath)
			if strings.Contains(string(data), "address already in use") {
				return "", false
			}
			t.Fatalf("prometheus exited while starting:\n%s", data)
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, true
			}
		}
		time.Sleep(50 * time.Millisecond) // polling readiness, with a deadline
	}
	t.Fatalf("prometheus not ready within %v", startTimeout)
	return "", false
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// promSample is one element of an instant vector result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery evaluates expr now through /api/v1/query; an error is
// Prometheus refusing or failing the query.
func promQuery(base, expr string) ([]promSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := promGet(base, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType == "scalar" {
		return []promSample{{}}, nil
	}
	var out []promSample
	if err := json.Unmarshal(data.Result, &out); err != nil {
		return nil, fmt.Errorf("result %s: %v", data.Result, err)
	}
	for i := range out {
		out[i].Value[1] = fmt.Sprint(out[i].Value[1])
	}
	return out, nil
}

// promGet calls a Prometheus API path and decodes its data.
func promGet(base, path string, q url.Values, data any) error {
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := httpClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %d: %v", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s: %s", body.Status, body.ErrorType, body.Error)
	}
	if len(body.Warnings) > 0 {
		return fmt.Errorf("warnings: %v", body.Warnings)
	}
	return json.Unmarshal(body.Data, data)
}
