package agent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Metrics are the agent's Prometheus metrics (names per CONTRACT.md).
type Metrics struct {
	mediaSeconds *prometheus.CounterVec
	frames       *prometheus.CounterVec
	sessions     *prometheus.GaugeVec
	capacity     *prometheus.GaugeVec
	steps        *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	available    *prometheus.GaugeVec
	fallbacks    *prometheus.CounterVec

	mu   sync.Mutex
	seen map[string]encoders.Progress // step id → progress counted so far
}

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		mediaSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_encoded_media_seconds_total",
			Help: "Seconds of media encoded; its rate is the real-time factor.",
		}, []string{"kind", "codec", "encoder"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_encoded_frames_total", Help: "Video frames encoded.",
		}, []string{"codec", "encoder"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ittybit_agent_sessions_active", Help: "Encodes running, by encoder.",
		}, []string{"encoder"}),
		capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ittybit_agent_sessions_capacity", Help: "Concurrent encodes an encoder allows (0: no limit of its own).",
		}, []string{"encoder"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_steps_total", Help: "Steps run, by step kind (probe, ingest, encode, upload) and result.",
		}, []string{"step_kind", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_bytes_total", Help: "Bytes moved: ingest (sources fetched) and upload (results delivered).",
		}, []string{"direction"}),
		available: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ittybit_agent_encoder_available", Help: "1 when the encoder can encode the codec on this host, else 0.",
		}, []string{"encoder", "codec"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_agent_fallbacks_total", Help: "Encodes that failed on hardware and were redone in software, by the hardware encoder.",
		}, []string{"from_encoder"}),
		seen: map[string]encoders.Progress{},
	}
	for _, d := range []string{"ingest", "upload"} {
		m.bytes.WithLabelValues(d)
	}
	if reg != nil {
		reg.MustRegister(m.mediaSeconds, m.frames, m.sessions, m.capacity, m.steps, m.bytes, m.available, m.fallbacks)
	}
	return m
}

// setCapacity publishes what the host can encode with.
func (m *Metrics) setCapacity(caps []encoders.Capability) {
	for _, c := range caps {
		enc := encoders.EncoderName(c.Backend, c.Codec)
		if enc == "" {
			enc = c.Plugin
		}
		v := 0.0
		if c.Available {
			v = 1
		}
		m.available.WithLabelValues(enc, c.Codec).Set(v)
		if c.Available {
			m.capacity.WithLabelValues(enc).Set(float64(c.MaxSessions))
			m.sessions.WithLabelValues(enc).Add(0)
		}
	}
}

// observeProgress remembers an encode's progress; the totals are added
// when the encoder that ran it is known.
func (m *Metrics) observeProgress(stepID string, _ encoders.Kind, p encoders.Progress) {
	m.mu.Lock()
	m.seen[stepID] = p
	m.mu.Unlock()
}

// finishProgress adds an encode's media time and frames under the encoder
// that ran it.
func (m *Metrics) finishProgress(stepID string, kind encoders.Kind, res EncodeResult) {
	m.mu.Lock()
	p := m.seen[stepID]
	delete(m.seen, stepID)
	m.mu.Unlock()
	if res.Encoder == "" {
		return
	}
	codec := res.Plan.Format
	if res.Plan.Video != nil {
		codec = res.Plan.Video.Codec
	} else if res.Plan.Audio != nil {
		codec = res.Plan.Audio.Codec
	}
	seconds := p.MediaSeconds
	if res.File.Duration > 0 {
		seconds = res.File.Duration
	}
	if res.Fallback != nil {
		m.fallbacks.WithLabelValues(res.Fallback.From).Inc()
	}
	m.mediaSeconds.WithLabelValues(string(kind), codec, res.Encoder).Add(seconds)
	m.frames.WithLabelValues(codec, res.Encoder).Add(float64(p.Frames))
}

// Sessions counts a running encode under its encoder.
func (m *Metrics) Sessions(encoder string) prometheus.Gauge {
	return m.sessions.WithLabelValues(encoder)
}
