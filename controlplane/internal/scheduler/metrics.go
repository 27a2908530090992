package scheduler

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Metrics are the scheduler's Prometheus metrics (names per README.md, Monitoring).
// The queue and node gauges are read from the dispatcher when Prometheus
// scrapes, so that scheduling never pays for them.
type Metrics struct {
	StepWait      prometheus.Histogram
	StepDuration  *prometheus.HistogramVec
	TasksFinished *prometheus.CounterVec
	StepFailures  *prometheus.CounterVec
	// Splits counts encode steps split into parts; PartRetries the part
	// attempts that ended without the part, which then ran again;
	// BackupsStarted and BackupsWon the backup copies of straggling parts
	// started, and those that finished first.
	Splits, PartRetries        prometheus.Counter
	BackupsStarted, BackupsWon prometheus.Counter

	queueDesc, nodesDesc, partsDesc, priorityDesc *prometheus.Desc
	mu                                            sync.Mutex
	source                                        func() (queue, nodes, parts, priorities map[string]float64)
	// projects reports the queue by project (see Config.MetricProjects).
	projects    func() map[string]float64
	projectDesc *prometheus.Desc
}

// encodeBuckets span sub-second probes to multi-hour encodes: about three
// per decade, so that p50/p95 of a ten-minute encode land within a
// bucket's width of the truth.
var encodeBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// stepKinds label the queue gauge, so that every kind is present from the
// start.
var stepKinds = func() []string {
	out := []string{api.StepProbe, api.StepIngest}
	for _, k := range encoders.Kinds {
		out = append(out, string(k))
	}
	return append(out, api.StepUpload)
}()

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		StepWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ittybit_step_wait_seconds", Help: "Time from a step becoming queued to its being assigned (processing).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		StepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ittybit_step_duration_seconds", Help: "Time steps ran, from assignment to completion, by step kind and encoder.",
			Buckets: encodeBuckets,
		}, []string{"step_kind", "encoder"}),
		TasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_tasks_finished_total", Help: "Tasks that ended, by kind and final status.",
		}, []string{"kind", "status"}),
		StepFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_step_failures_total", Help: "Failed step attempts, by step kind and error kind (retried or final).",
		}, []string{"step_kind", "error_kind"}),
		Splits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ittybit_step_splits_total", Help: "Encode steps split into parts that run on several agents.",
		}),
		PartRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ittybit_part_retries_total", Help: "Attempts at parts of split steps that failed or were handed back, the part then running again.",
		}),
		BackupsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ittybit_part_backups_started_total", Help: "Backup copies of straggling parts started on another agent.",
		}),
		BackupsWon: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ittybit_part_backups_won_total", Help: "Backup copies of parts that finished before the copy they backed up.",
		}),
		partsDesc:    prometheus.NewDesc("ittybit_parts", "Parts of split steps, by state: queued (ready, waiting for an agent) or running (copies running, backups included); 0 on followers.", []string{"state"}, nil),
		queueDesc:    prometheus.NewDesc("ittybit_queue_depth", "Steps ready to run and waiting for a node, by step kind (0 on followers).", []string{"step_kind"}, nil),
		projectDesc:  prometheus.NewDesc("ittybit_queue_depth_by_project", "Steps ready to run and waiting for a node, for the projects with the most (--queue-metrics-projects of them), the rest under other and the operator's tasks under none (0 on followers).", []string{"project"}, nil),
		priorityDesc: prometheus.NewDesc("ittybit_queue_depth_by_priority", "Steps ready to run and waiting for a node, by their task's priority: low, normal, high (0 on followers).", []string{"priority"}, nil),
		nodesDesc:    prometheus.NewDesc("ittybit_nodes", "Agents known to the leader, by state: ready, draining, down (0 on followers).", []string{"state"}, nil),
	}
	// Every kind and final status reads 0 from the start, so that rates
	// and ratios over them have a series before the first task ends.
	for _, k := range encoders.Kinds {
		for _, s := range []api.TaskStatus{api.TaskCompleted, api.TaskFailed, api.TaskCancelled} {
			m.TasksFinished.WithLabelValues(string(k), string(s))
		}
	}
	if reg != nil {
		reg.MustRegister(m.StepWait, m.StepDuration, m.TasksFinished, m.StepFailures, m.Splits, m.PartRetries, m.BackupsStarted, m.BackupsWon, m)
	}
	return m
}

// Describe implements prometheus.Collector for the gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queueDesc
	ch <- m.priorityDesc
	ch <- m.projectDesc
	ch <- m.nodesDesc
	ch <- m.partsDesc
}

// Collect implements prometheus.Collector: the gauges, as the dispatcher
// sees them now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	src, byProject := m.source, m.projects
	m.mu.Unlock()
	if byProject != nil {
		for p, n := range byProject() {
			ch <- prometheus.MustNewConstMetric(m.projectDesc, prometheus.GaugeValue, n, p)
		}
	}
	queue, nodes, parts, priorities := map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
	if src != nil {
		queue, nodes, parts, priorities = src()
	}
	for _, p := range api.Priorities() {
		ch <- prometheus.MustNewConstMetric(m.priorityDesc, prometheus.GaugeValue, priorities[p], p)
	}
	for _, s := range []string{"queued", "running"} {
		ch <- prometheus.MustNewConstMetric(m.partsDesc, prometheus.GaugeValue, parts[s], s)
	}
	for _, k := range stepKinds {
		ch <- prometheus.MustNewConstMetric(m.queueDesc, prometheus.GaugeValue, queue[k], k)
	}
	for _, s := range []state.NodeStatus{state.NodeReady, state.NodeDraining, state.NodeDown} {
		ch <- prometheus.MustNewConstMetric(m.nodesDesc, prometheus.GaugeValue, nodes[string(s)], string(s))
	}
}

// gauges counts the ready queue by step kind, the agents by state and the
// parts by state; a dispatcher that does not lead reports nothing.
func (d *Dispatcher) gauges() (queue, nodes, parts, priorities map[string]float64) {
	queue, nodes, parts, priorities = map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
	recorded := d.cfg.Store.State().Nodes()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return queue, nodes, parts, priorities
	}
	t := &d.ready.tally
	for k, n := range t.kinds {
		queue[k] = float64(n)
	}
	names := api.Priorities()
	for p, n := range t.priorities {
		if p >= 0 && p < len(names) {
			priorities[names[p]] = float64(n)
		}
	}
	parts["queued"] = float64(t.parts)
	d.eachLease(func(l *lease) {
		if l.part != nil {
			parts["running"]++
		}
	})
	for _, ns := range d.nodes {
		nodes[string(ns.node.Status)]++
	}
	for _, n := range recorded {
		if _, live := d.nodes[n.Name]; !live {
			nodes[string(state.NodeDown)]++
		}
	}
	return queue, nodes, parts, priorities
}
