package agent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Metrics are the agent's Prometheus metrics (names per README.md, Monitoring). No
// label ever holds a task or step id: labels are step kinds, codecs,
// encoders, results and directions, all small sets.
type Metrics struct {
	mediaSeconds *prometheus.CounterVec
	frames       *prometheus.CounterVec
	sessions     *prometheus.GaugeVec
	steps        *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	fallbacks    *prometheus.CounterVec
	slots        prometheus.Gauge

	// caps reads the encoders' capability rows at each scrape (a plugin
	// that restarts detects again): encoder_available and
	// sessions_capacity come from them.
	capsMu sync.Mutex
	caps   func() []encoders.Capability
}

// Step kinds and results of ittybit_agent_steps_total.
var (
	stepKinds   = []string{"probe", "ingest", "encode", "upload"}
	stepResults = []string{"completed", "failed", "released"}
)

var (
	availableDesc = prometheus.NewDesc("ittybit_agent_encoder_available",
		"1 when the encoder can encode the codec on this host (on any of its devices), else 0.", []string{"encoder", "codec"}, nil)
	capacityDesc = prometheus.NewDesc("ittybit_agent_sessions_capacity",
		"Encoder sessions the encoder may open at once on this host, summed over its devices; 0: no limit of its own (software). Encoders of one GPU share its sessions.",
		[]string{"encoder"}, nil)
)

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		mediaSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_encoded_media_seconds_total",
			Help: "Seconds of media encoded, counted as the encode runs, by task kind, codec and the encoder running; its rate is the real-time factor.",
		}, []string{"kind", "codec", "encoder"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_encoded_frames_total",
			Help: "Video frames encoded, counted as the encode runs, by codec and the encoder running.",
		}, []string{"codec", "encoder"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ittybit_agent_sessions_active",
			Help: "Encoder sessions open, by the encoder running them: one per encode, one per rendition of an HLS ladder.",
		}, []string{"encoder"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_steps_total",
			Help: "Steps run, by step kind (probe, ingest, encode, upload) and result (completed, failed, released).",
		}, []string{"step_kind", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_bytes_total",
			Help: "Bytes moved: ingest (sources fetched from their origin) and upload (results delivered to s3:// outputs or managed storage).",
		}, []string{"direction"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_fallbacks_total",
			Help: "Encodes that failed on hardware and were redone in software, by the hardware encoder.",
		}, []string{"from_encoder"}),
		slots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ittybit_agent_slots",
			Help: "Steps the agent runs at once.",
		}),
	}
	for _, d := range []string{"ingest", "upload"} {
		m.bytes.WithLabelValues(d)
	}
	for _, k := range stepKinds {
		for _, r := range stepResults {
			m.steps.WithLabelValues(k, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.mediaSeconds, m.frames, m.sessions, m.steps, m.bytes, m.fallbacks, m.slots, capsCollector{m})
	}
	return m
}

// watch publishes what the host can encode with, read from caps at each
// scrape, and starts the series that should read 0 before any encode.
func (m *Metrics) watch(caps func() []encoders.Capability, slots int) {
	m.capsMu.Lock()
	m.caps = caps
	m.capsMu.Unlock()
	m.slots.Set(float64(slots))
	for _, r := range encoderRows(caps()) {
		if r.available == 1 {
			m.sessions.WithLabelValues(r.encoder)
			if r.hardware {
				m.fallbacks.WithLabelValues(r.encoder)
			}
		}
	}
}

// encoderRow is what the capability rows of one encoder and codec add up
// to on this host.
type encoderRow struct {
	encoder, codec string
	hardware       bool
	available      float64 // 1 when any row is available
	capacity       float64 // sum of the available rows' session limits
	unlimited      bool    // an available row has no limit
}

// encoderRows folds capability rows (one per plugin, device and codec)
// into one per encoder and codec, in their first order.
func encoderRows(caps []encoders.Capability) []*encoderRow {
	var out []*encoderRow
	index := map[[2]string]*encoderRow{}
	for _, c := range caps {
		enc := encoders.EncoderName(c.Backend, c.Codec)
		if enc == "" {
			if !c.Available {
				continue // no such encoder (NVENC has no VP9): nothing to say
			}
			enc = c.Plugin // a plugin's own backend
		}
		key := [2]string{enc, c.Codec}
		r := index[key]
		if r == nil {
			r = &encoderRow{encoder: enc, codec: c.Codec, hardware: c.Backend.Hardware()}
			index[key] = r
			out = append(out, r)
		}
		if c.Available {
			r.available = 1
			r.capacity += float64(c.MaxSessions)
			r.unlimited = r.unlimited || c.MaxSessions == 0
		}
	}
	return out
}

// capsCollector reads the capability rows at each scrape.
type capsCollector struct{ m *Metrics }

func (c capsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- availableDesc
	ch <- capacityDesc
}

func (c capsCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.capsMu.Lock()
	caps := c.m.caps
	c.m.capsMu.Unlock()
	if caps == nil {
		return
	}
	capacity := map[string]float64{}
	var order []string
	for _, r := range encoderRows(caps()) {
		ch <- prometheus.MustNewConstMetric(availableDesc, prometheus.GaugeValue, r.available, r.encoder, r.codec)
		if r.available == 0 {
			continue
		}
		// One figure per encoder: its codec rows share the devices.
		v := r.capacity
		if r.unlimited {
			v = 0
		}
		if old, seen := capacity[r.encoder]; !seen {
			order = append(order, r.encoder)
			capacity[r.encoder] = v
		} else if v > old {
			capacity[r.encoder] = v
		}
	}
	for _, enc := range order {
		ch <- prometheus.MustNewConstMetric(capacityDesc, prometheus.GaugeValue, capacity[enc], enc)
	}
}

// encodeMeter counts one encode step's work while it runs, under the
// encoder of the attempt running: a hardware attempt's frames count as
// NVENC's even when software redoes the encode after it failed.
type encodeMeter struct {
	m    *Metrics
	kind encoders.Kind

	mu      sync.Mutex
	started bool
	media   prometheus.Counter
	frames  prometheus.Counter // nil without video
	counted encoders.Progress  // of the attempt running, already added
	pending encoders.Progress  // progress of an encoder that never said it started
}

func (m *Metrics) newEncodeMeter(kind encoders.Kind) *encodeMeter {
	return &encodeMeter{m: m, kind: kind}
}

// planLabels are the codec and encoder labels of a plan: the video codec
// (an image's format), else the audio codec, else the format.
func planLabels(p encoders.Plan) (codec, encoder string) {
	switch {
	case p.Video != nil:
		codec = p.Video.Codec
	case p.Audio != nil:
		codec = p.Audio.Codec
	default:
		codec = p.Format
	}
	return codec, p.Encoder
}

// attempt starts counting an attempt: its sessions are open until the
// returned function is called, and its progress restarts from 0.
func (e *encodeMeter) attempt(a encoders.Attempt) (ended func()) {
	codec, enc := planLabels(a.Plan)
	e.mu.Lock()
	e.started = true
	e.media = e.m.mediaSeconds.WithLabelValues(string(e.kind), codec, enc)
	e.frames = nil
	if a.Plan.Video != nil {
		e.frames = e.m.frames.WithLabelValues(codec, enc)
	}
	e.counted = encoders.Progress{}
	e.mu.Unlock()
	n := float64(max(a.Sessions, 1))
	g := e.m.sessions.WithLabelValues(enc)
	g.Add(n)
	var once sync.Once
	return func() { once.Do(func() { g.Sub(n) }) }
}

// progress adds what the attempt did since its last report.
func (e *encodeMeter) progress(p encoders.Progress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		e.pending = p
		return
	}
	e.add(p)
}

// add counts p beyond what was counted. Callers hold e.mu.
func (e *encodeMeter) add(p encoders.Progress) {
	if d := p.MediaSeconds - e.counted.MediaSeconds; d > 0 {
		e.media.Add(d)
		e.counted.MediaSeconds = p.MediaSeconds
	}
	if d := p.Frames - e.counted.Frames; d > 0 && e.frames != nil {
		e.frames.Add(float64(d))
		e.counted.Frames = p.Frames
	}
}

// finish completes the count when the encode ends: a successful result's
// duration where the progress reports fell short of it, everything at
// once for an encoder that never reported its attempts, and the fallback.
func (e *encodeMeter) finish(res encoders.Result, err error) {
	if res.Fallback != nil {
		e.m.fallbacks.WithLabelValues(res.Fallback.From).Inc()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		if res.Encoder == "" {
			return
		}
		codec, _ := planLabels(res.Plan)
		e.started = true
		e.media = e.m.mediaSeconds.WithLabelValues(string(e.kind), codec, res.Encoder)
		if res.Plan.Video != nil {
			e.frames = e.m.frames.WithLabelValues(codec, res.Encoder)
		}
		e.add(e.pending)
	}
	if err == nil && res.File.Duration > 0 {
		e.add(encoders.Progress{MediaSeconds: res.File.Duration})
	}
}
