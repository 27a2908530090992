package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
)

func videoPlan(encoder string, backend encoders.Backend) encoders.Plan {
	return encoders.Plan{Kind: encoders.KindVideo, Format: "mp4", Backend: backend, Encoder: encoder,
		Video: &encoders.VideoPlan{Codec: "h264", Encoder: encoder}}
}

// lint fails the test on any promlint problem: what `promtool check
// metrics` reports.
func lint(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestEncodeMeterCountsUnderTheRunningEncoder: an NVENC attempt that fails
// after a second, then the software retry. Media time and frames move with
// each progress report, under the encoder of the attempt running, and the
// sessions gauge follows the attempts.
func TestEncodeMeterCountsUnderTheRunningEncoder(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	media := func(enc string) float64 {
		return testutil.ToFloat64(m.mediaSeconds.WithLabelValues("video", "h264", enc))
	}
	frames := func(enc string) float64 { return testutil.ToFloat64(m.frames.WithLabelValues("h264", enc)) }
	sessions := func(enc string) float64 { return testutil.ToFloat64(m.sessions.WithLabelValues(enc)) }

	e := m.newEncodeMeter(encoders.KindVideo)
	ended := e.attempt(encoders.Attempt{Plan: videoPlan("h264_nvenc", encoders.BackendNVENC), Sessions: 1})
	if got := sessions("h264_nvenc"); got != 1 {
		t.Errorf("nvenc sessions %v during its attempt, want 1", got)
	}
	e.progress(encoders.Progress{MediaSeconds: 0.5, Frames: 15})
	e.progress(encoders.Progress{MediaSeconds: 1, Frames: 30})
	if media("h264_nvenc") != 1 || frames("h264_nvenc") != 30 {
		t.Errorf("during the encode: %v s, %v frames; want 1 s, 30 frames", media("h264_nvenc"), frames("h264_nvenc"))
	}
	ended()
	ended() // once only
	if got := sessions("h264_nvenc"); got != 0 {
		t.Errorf("nvenc sessions %v after its attempt, want 0", got)
	}

	ended = e.attempt(encoders.Attempt{Plan: videoPlan("libx264", encoders.BackendSoftware), Sessions: 1})
	e.progress(encoders.Progress{MediaSeconds: 0.5, Frames: 15}) // the retry starts from 0
	e.progress(encoders.Progress{MediaSeconds: 2, Frames: 60})
	e.progress(encoders.Progress{MediaSeconds: 1.9, Frames: 58}) // never backwards
	ended()
	e.finish(encoders.Result{File: encoders.File{Duration: 2.5}, Plan: videoPlan("libx264", encoders.BackendSoftware), Encoder: "libx264",
		Fallback: &encoders.Fallback{From: "h264_nvenc"}}, nil)
	if media("h264_nvenc") != 1 || frames("h264_nvenc") != 30 {
		t.Errorf("nvenc: %v s, %v frames; want 1 s, 30 frames", media("h264_nvenc"), frames("h264_nvenc"))
	}
	// The result's duration tops up what the reports fell short of.
	if media("libx264") != 2.5 || frames("libx264") != 60 {
		t.Errorf("libx264: %v s, %v frames; want 2.5 s, 60 frames", media("libx264"), frames("libx264"))
	}
	if got := testutil.ToFloat64(m.fallbacks.WithLabelValues("h264_nvenc")); got != 1 {
		t.Errorf("fallbacks %v, want 1", got)
	}
	lint(t, reg)
}

// TestEncodeMeterLadderAndSilentEncoders: an HLS ladder holds a session per
// rendition; an encoder that never reports its attempts is counted at the
// end, under the result's encoder; audio counts no frames.
func TestEncodeMeterLadderAndSilentEncoders(t *testing.T) {
	m := NewMetrics(nil)
	e := m.newEncodeMeter(encoders.KindAdaptive)
	plan := videoPlan("libx264", encoders.BackendSoftware)
	plan.Kind, plan.HLS = encoders.KindAdaptive, &encoders.HLSPlan{Renditions: make([]encoders.Rendition, 3)}
	ended := e.attempt(encoders.Attempt{Plan: plan, Sessions: 3})
	if got := testutil.ToFloat64(m.sessions.WithLabelValues("libx264")); got != 3 {
		t.Errorf("sessions %v, want 3", got)
	}
	ended()

	e = m.newEncodeMeter(encoders.KindVideo)
	e.progress(encoders.Progress{MediaSeconds: 3, Frames: 90})
	e.finish(encoders.Result{Plan: videoPlan("libx265", encoders.BackendSoftware), Encoder: "libx265"}, errors.New("failed"))
	if got := testutil.ToFloat64(m.mediaSeconds.WithLabelValues("video", "h264", "libx265")); got != 3 {
		t.Errorf("silent encoder: %v s, want 3", got)
	}

	m = NewMetrics(nil)
	e = m.newEncodeMeter(encoders.KindAudio)
	audio := encoders.Plan{Kind: encoders.KindAudio, Format: "mp3", Encoder: "libmp3lame", Audio: &encoders.AudioPlan{Codec: "mp3"}}
	ended = e.attempt(encoders.Attempt{Plan: audio, Sessions: 1})
	e.progress(encoders.Progress{MediaSeconds: 2})
	ended()
	e.finish(encoders.Result{Plan: audio, Encoder: "libmp3lame", File: encoders.File{Duration: 3}}, nil)
	if got := testutil.ToFloat64(m.mediaSeconds.WithLabelValues("audio", "mp3", "libmp3lame")); got != 3 {
		t.Errorf("audio: %v s, want 3", got)
	}
	if n := testutil.CollectAndCount(m.frames); n != 0 {
		t.Errorf("%d frame series after audio only, want none", n)
	}
}

// TestCapabilityMetrics: availability and session capacity per encoder,
// read from the rows at each scrape, so a plugin that restarts without
// its GPU shows at the next one.
func TestCapabilityMetrics(t *testing.T) {
	gpu0, gpu1 := "GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)", "GPU 1: NVIDIA GeForce RTX 3060 (driver 535.104.05)"
	caps := []encoders.Capability{
		{Plugin: "software", Backend: encoders.BackendSoftware, Codec: "h264", Available: true},
		{Plugin: "software", Backend: encoders.BackendSoftware, Codec: "vp9", Available: true},
		{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: "h264", Device: gpu0, Available: true, MaxSessions: 5},
		{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: "h264", Device: gpu1, Available: true, MaxSessions: 5},
		{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: "h265", Device: gpu0, Available: true, MaxSessions: 5},
		{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: "vp9", Device: gpu0, Reason: "NVENC has no VP9 encoder"},
		{Plugin: "qsv", Backend: encoders.BackendQSV, Codec: "h264", Reason: "no render node"},
		{Plugin: "x264fast", Backend: encoders.BackendSoftware, Codec: "h264", Available: true},
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.watch(func() []encoders.Capability { return caps }, 3)
	want := `
# HELP ittybit_agent_encoder_available 1 when the encoder can encode the codec on this host (on any of its devices), else 0.
# TYPE ittybit_agent_encoder_available gauge
ittybit_agent_encoder_available{codec="h264",encoder="h264_nvenc"} 1
ittybit_agent_encoder_available{codec="h264",encoder="h264_qsv"} 0
ittybit_agent_encoder_available{codec="h264",encoder="libx264"} 1
ittybit_agent_encoder_available{codec="h265",encoder="hevc_nvenc"} 1
ittybit_agent_encoder_available{codec="vp9",encoder="libvpx-vp9"} 1
# HELP ittybit_agent_sessions_capacity Encoder sessions the encoder may open at once on this host, summed over its devices; 0: no limit of its own (software). Encoders of one GPU share its sessions.
# TYPE ittybit_agent_sessions_capacity gauge
ittybit_agent_sessions_capacity{encoder="h264_nvenc"} 10
ittybit_agent_sessions_capacity{encoder="hevc_nvenc"} 5
ittybit_agent_sessions_capacity{encoder="libvpx-vp9"} 0
ittybit_agent_sessions_capacity{encoder="libx264"} 0
# HELP ittybit_agent_slots Steps the agent runs at once.
# TYPE ittybit_agent_slots gauge
ittybit_agent_slots 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ittybit_agent_encoder_available", "ittybit_agent_sessions_capacity", "ittybit_agent_slots"); err != nil {
		t.Error(err)
	}
	// Present at 0 before any encode: sessions of the usable encoders,
	// fallbacks from the hardware ones, steps of every kind and result.
	if n := testutil.CollectAndCount(m.sessions); n != 4 {
		t.Errorf("%d session series, want 4 (libx264, libvpx-vp9, h264_nvenc, hevc_nvenc)", n)
	}
	if n := testutil.CollectAndCount(m.fallbacks); n != 2 {
		t.Errorf("%d fallback series, want 2", n)
	}
	if n := testutil.CollectAndCount(m.steps); n != 12 {
		t.Errorf("%d step series, want 12", n)
	}

	caps = caps[:2] // the nvenc plugin restarted and found no GPU
	lost := `
# HELP ittybit_agent_encoder_available 1 when the encoder can encode the codec on this host (on any of its devices), else 0.
# TYPE ittybit_agent_encoder_available gauge
ittybit_agent_encoder_available{codec="h264",encoder="libx264"} 1
ittybit_agent_encoder_available{codec="vp9",encoder="libvpx-vp9"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(lost), "ittybit_agent_encoder_available"); err != nil {
		t.Error(err)
	}
	lint(t, reg)
}

func TestGPUCollector(t *testing.T) {
	v := func(f float64) *float64 { return &f }
	usage := []detect.GPUUsage{
		{Index: "0", EncoderUtilization: v(0.37), DecoderUtilization: v(0.05), EncoderSessions: v(2)},
		{Index: "1", DecoderUtilization: v(0.5)}, // no NVENC: no encoder figures
	}
	var err error
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewGPUCollector(func(context.Context) ([]detect.GPUUsage, error) { return usage, err }, nil))
	want := `
# HELP ittybit_gpu_decoder_utilization_ratio Share of time the GPU's video decoder (NVDEC) was busy over the driver's last sampling period, 0 to 1.
# TYPE ittybit_gpu_decoder_utilization_ratio gauge
ittybit_gpu_decoder_utilization_ratio{gpu="0"} 0.05
ittybit_gpu_decoder_utilization_ratio{gpu="1"} 0.5
# HELP ittybit_gpu_encoder_sessions NVENC sessions open on the GPU, by every process on the host.
# TYPE ittybit_gpu_encoder_sessions gauge
ittybit_gpu_encoder_sessions{gpu="0"} 2
# HELP ittybit_gpu_encoder_utilization_ratio Share of time the GPU's video encoder (NVENC) was busy over the driver's last sampling period, 0 to 1.
# TYPE ittybit_gpu_encoder_utilization_ratio gauge
ittybit_gpu_encoder_utilization_ratio{gpu="0"} 0.37
# HELP ittybit_gpu_query_success 1 when this scrape's nvidia-smi query answered, else 0.
# TYPE ittybit_gpu_query_success gauge
ittybit_gpu_query_success 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	lint(t, reg)

	err = errors.New("nvidia-smi failed")
	failed := `
# HELP ittybit_gpu_query_success 1 when this scrape's nvidia-smi query answered, else 0.
# TYPE ittybit_gpu_query_success gauge
ittybit_gpu_query_success 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(failed)); err != nil {
		t.Error(err)
	}
}

// TestGPUCollectorWithNvidiaSMI reads the fake GeForce host through the
// fake nvidia-smi on PATH: the collector as the agent wires it.
func TestGPUCollectorWithNvidiaSMI(t *testing.T) {
	encoderstest.NewFakeHardware(t, encoderstest.HostNVIDIA535).Install(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewGPUCollector(func(ctx context.Context) ([]detect.GPUUsage, error) {
		return detect.QueryGPUUsage(ctx, detect.Config{})
	}, nil))
	want := `
# HELP ittybit_gpu_encoder_utilization_ratio Share of time the GPU's video encoder (NVENC) was busy over the driver's last sampling period, 0 to 1.
# TYPE ittybit_gpu_encoder_utilization_ratio gauge
ittybit_gpu_encoder_utilization_ratio{gpu="0"} 0.37
# HELP ittybit_gpu_encoder_sessions NVENC sessions open on the GPU, by every process on the host.
# TYPE ittybit_gpu_encoder_sessions gauge
ittybit_gpu_encoder_sessions{gpu="0"} 2
# HELP ittybit_gpu_query_success 1 when this scrape's nvidia-smi query answered, else 0.
# TYPE ittybit_gpu_query_success gauge
ittybit_gpu_query_success 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ittybit_gpu_encoder_utilization_ratio", "ittybit_gpu_encoder_sessions", "ittybit_gpu_query_success"); err != nil {
		t.Error(err)
	}
	lint(t, reg)
}

func TestHasNVIDIA(t *testing.T) {
	for _, tc := range []struct {
		caps []encoders.Capability
		want bool
	}{
		{nil, false},
		{[]encoders.Capability{{Backend: encoders.BackendNVENC, Codec: "h264", Reason: "no NVIDIA GPU"}}, false},
		{[]encoders.Capability{{Backend: encoders.BackendNVENC, Codec: "h264", Device: "GPU 0: NVIDIA H100 80GB HBM3 (driver 550.54.15)", Reason: "decode only"}}, true},
	} {
		if got := HasNVIDIA(tc.caps); got != tc.want {
			t.Errorf("HasNVIDIA(%+v) = %v", tc.caps, got)
		}
	}
}
