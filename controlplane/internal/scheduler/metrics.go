package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Metrics are the scheduler's Prometheus metrics (names per CONTRACT.md).
type Metrics struct {
	QueueDepth    *prometheus.GaugeVec
	StepWait      prometheus.Histogram
	StepDuration  *prometheus.HistogramVec
	Nodes         *prometheus.GaugeVec
	TasksFinished *prometheus.CounterVec
	StepFailures  *prometheus.CounterVec
}

// encodeBuckets span sub-second probes to multi-hour encodes: about three
// per decade, so that p50/p95 of a ten-minute encode land within a
// bucket's width of the truth.
var encodeBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ittybit_queue_depth", Help: "Steps ready to run and waiting for a node, by step kind.",
		}, []string{"step_kind"}),
		StepWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ittybit_step_wait_seconds", Help: "Time from a step becoming queued to its being assigned (processing).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		StepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ittybit_step_duration_seconds", Help: "Time steps ran, from assignment to completion, by step kind and encoder.",
			Buckets: encodeBuckets,
		}, []string{"step_kind", "encoder"}),
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ittybit_nodes", Help: "Agents known to the leader, by state (ready, draining, down).",
		}, []string{"state"}),
		TasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_tasks_finished_total", Help: "Tasks that ended, by kind and final status.",
		}, []string{"kind", "status"}),
		StepFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_step_failures_total", Help: "Failed step attempts, by step kind and error kind (retried or final).",
		}, []string{"step_kind", "error_kind"}),
	}
	// Every kind and final status reads 0 from the start, so that rates
	// and ratios over them have a series before the first task ends.
	for _, k := range encoders.Kinds {
		for _, s := range []api.TaskStatus{api.TaskCompleted, api.TaskFailed, api.TaskCancelled} {
			m.TasksFinished.WithLabelValues(string(k), string(s))
		}
	}
	if reg != nil {
		reg.MustRegister(m.QueueDepth, m.StepWait, m.StepDuration, m.Nodes, m.TasksFinished, m.StepFailures)
	}
	return m
}

// queueKinds are the step kinds of ittybit_queue_depth.
var queueKinds = func() []string {
	out := []string{api.StepProbe, api.StepIngest}
	for _, k := range encoders.Kinds {
		out = append(out, string(k))
	}
	return append(out, api.StepUpload)
}()

// resetGauges zeroes the gauges on a node that stops leading, so that only
// the leader reports the queue and the fleet.
func (m *Metrics) resetGauges() {
	m.QueueDepth.Reset()
	m.Nodes.Reset()
}

// updateGauges sets the queue and node gauges. Callers hold d.mu.
func (d *Dispatcher) updateGauges() {
	m := d.cfg.Metrics
	m.QueueDepth.Reset()
	for _, k := range queueKinds {
		m.QueueDepth.WithLabelValues(k).Set(0)
	}
	for _, r := range d.ready {
		m.QueueDepth.WithLabelValues(r.Kind).Inc()
	}
	counts := map[state.NodeStatus]int{state.NodeReady: 0, state.NodeDraining: 0, state.NodeDown: 0}
	for _, ns := range d.nodes {
		counts[ns.node.Status]++
	}
	for _, n := range d.cfg.Store.State().Nodes() {
		if _, live := d.nodes[n.Name]; !live {
			counts[state.NodeDown]++
		}
	}
	for s, c := range counts {
		m.Nodes.WithLabelValues(string(s)).Set(float64(c))
	}
}
