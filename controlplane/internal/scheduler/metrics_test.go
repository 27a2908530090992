package scheduler

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// logBuffer collects JSON log lines written from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes every line.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.buf.String()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// TestMetricsAndLogsFollowTasks runs a task through, fails one and cancels
// one, and checks the metrics every step of the way and that every log
// line about a task names its task, step and node.
func TestMetricsAndLogsFollowTasks(t *testing.T) {
	reg := prometheus.NewRegistry()
	logs := &logBuffer{}
	d, st := mustDispatcher(t, Config{Metrics: NewMetrics(reg), Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	m := d.cfg.Metrics
	value := func(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

	// From the start: every kind and final status, every queue, every state.
	if n := testutil.CollectAndCount(m.TasksFinished); n != 12 {
		t.Errorf("%d tasks_finished series, want 12 (4 kinds × 3 statuses)", n)
	}
	if n := testutil.CollectAndCount(m, "ittybit_queue_depth"); n != 7 {
		t.Errorf("%d queue_depth series, want 7", n)
	}
	if n := testutil.CollectAndCount(m, "ittybit_nodes"); n != 3 {
		t.Errorf("%d nodes series, want 3", n)
	}

	// Queued while no node is there.
	id := addTask(t, st, d, encoders.KindVideo, "")
	if got := gaugeValue(t, m, "ittybit_queue_depth", "probe"); got != 1 {
		t.Errorf("queue_depth{probe} %v with no node, want 1", got)
	}
	register(t, d, "a")
	if got := gaugeValue(t, m, "ittybit_nodes", "ready"); got != 1 {
		t.Errorf("nodes{ready} %v, want 1", got)
	}
	for _, step := range []string{"probe", "ingest", "video", "upload"} {
		a := poll(t, d, "a")
		if a.Step != step {
			t.Fatalf("got %s, want %s", a.Step, step)
		}
		rep := api.StepReport{Attempt: a.Attempt, Outcome: api.OutcomeCompleted, Output: json.RawMessage(`{"object":"file","url":"managed://tasks/` + id + `/output.mp4"}`)}
		if step == "video" {
			rep.Options = json.RawMessage(`{"encoder":"libx264"}`)
		}
		if _, err := d.Report(context.Background(), a.StepID, rep); err != nil {
			t.Fatal(err)
		}
	}
	if got := gaugeValue(t, m, "ittybit_queue_depth", "probe"); got != 0 {
		t.Errorf("queue_depth{probe} %v after the run, want 0", got)
	}
	if got := testutil.CollectAndCount(m.StepWait); got != 1 {
		t.Errorf("step_wait has %d series", got)
	}
	if got := value(m.TasksFinished.WithLabelValues("video", "completed")); got != 1 {
		t.Errorf("tasks_finished{video,completed} %v, want 1", got)
	}
	for _, lv := range [][2]string{{"probe", "none"}, {"ingest", "none"}, {"video", "libx264"}, {"upload", "none"}} {
		h := m.StepDuration.WithLabelValues(lv[0], lv[1]).(prometheus.Histogram)
		if n := histogramCount(t, h); n != 1 {
			t.Errorf("step_duration{%s,%s} count %d, want 1", lv[0], lv[1], n)
		}
	}
	if n := histogramCount(t, m.StepWait); n != 4 {
		t.Errorf("step_wait count %d, want 4 (one per step)", n)
	}

	// A failure that ends its task.
	failed := addTask(t, st, d, encoders.KindAudio, "")
	a := poll(t, d, "a")
	if _, err := d.Report(context.Background(), a.StepID, api.StepReport{Attempt: a.Attempt, Outcome: api.OutcomeFailed,
		Error: &api.Error{Kind: "invalid_media", Message: "not media"}}); err != nil {
		t.Fatal(err)
	}
	if got := value(m.StepFailures.WithLabelValues("probe", "invalid_media")); got != 1 {
		t.Errorf("step_failures{probe,invalid_media} %v, want 1", got)
	}
	if got := value(m.TasksFinished.WithLabelValues("audio", "failed")); got != 1 {
		t.Errorf("tasks_finished{audio,failed} %v, want 1 (task %s)", got, failed)
	}

	// A cancel, while its probe runs.
	cancelled := addTask(t, st, d, encoders.KindImage, "")
	poll(t, d, "a")
	if _, err := st.CancelTask(cancelled, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if got := value(m.TasksFinished.WithLabelValues("image", "cancelled")); got != 1 {
		t.Errorf("tasks_finished{image,cancelled} %v, want 1", got)
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// Logs: the lines about tasks carry all three ids.
	seen := map[string]bool{}
	for _, rec := range logs.records(t) {
		_, task := rec["task_id"]
		_, step := rec["step_id"]
		_, node := rec["node_id"]
		if (task || step) && !(task && step && node) {
			t.Errorf("log line about a task without task_id, step_id and node_id: %v", rec)
		}
		if task {
			seen[rec["msg"].(string)] = true
			if msg := rec["msg"]; msg == "step assigned" && rec["node_id"] != "a" {
				t.Errorf("%v: node_id %v, want a", msg, rec["node_id"])
			}
		}
	}
	for _, msg := range []string{"task queued", "step assigned", "step completed", "step failed", "task finished", "task cancelled"} {
		if !seen[msg] {
			t.Errorf("no %q line with the task's ids", msg)
		}
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// gaugeValue reads one series of the gauges the Metrics collector reports
// from the dispatcher.
func gaugeValue(t *testing.T, m *Metrics, name, label string) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { m.Collect(ch); close(ch) }()
	for metric := range ch {
		if !strings.Contains(metric.Desc().String(), `"`+name+`"`) {
			continue
		}
		var pb dto.Metric
		if err := metric.Write(&pb); err != nil {
			t.Fatal(err)
		}
		for _, lp := range pb.GetLabel() {
			if lp.GetValue() == label {
				return pb.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
