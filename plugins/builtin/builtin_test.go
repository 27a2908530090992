package builtin_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/plugins/builtin"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

var clips *encoderstest.Clips

func TestMain(m *testing.M) {
	clips = encoderstest.NewClips()
	code := m.Run()
	clips.Close()
	os.Exit(code)
}

func mustNew(t *testing.T, name string, cfg builtin.Config) encoderplugin.Encoder {
	t.Helper()
	p, err := builtin.New(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// job plans a one-second h264 video of the small clip for backend b.
func job(t *testing.T, b encoders.Backend) encoders.Job {
	t.Helper()
	in := clips.Path(t, encoderstest.SmallHD)
	info, err := (&probe.Prober{}).Probe(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	end := 1.0
	plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindVideo, Input: in, Options: encoders.Options{End: &end}}, info, b)
	if err != nil {
		t.Fatal(err)
	}
	return encoders.Job{Plan: plan, Input: in, Output: filepath.Join(t.TempDir(), "out.mp4")}
}

func TestNames(t *testing.T) {
	if diff := cmp.Diff([]string{"software", "nvenc", "qsv", "vaapi"}, builtin.Names()); diff != "" {
		t.Error(diff)
	}
	if _, err := builtin.New("amf", builtin.Config{}); err == nil {
		t.Error("New(amf) succeeded")
	}
}

func TestSoftwareDetectsAndEncodes(t *testing.T) {
	p := mustNew(t, "software", builtin.Config{Version: "1.0"})
	info, err := p.Info(t.Context())
	if err != nil || info != (encoderplugin.Info{Name: "software", Version: "1.0"}) {
		t.Errorf("Info = %+v, %v", info, err)
	}
	caps, err := p.Detect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range caps {
		if !c.Available || c.Backend != encoders.BackendSoftware {
			t.Errorf("software row %+v", c)
		}
	}
	var mu sync.Mutex
	var progress []encoders.Progress
	var commands []string
	j := job(t, encoders.BackendSoftware)
	f, err := p.Encode(t.Context(), encoderplugin.Request{Job: j, Trace: func(argv []string) { commands = append(commands, argv[0]) }},
		func(pr encoders.Progress) { mu.Lock(); progress = append(progress, pr); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if f.Codec != "h264" || f.URL != j.Output || len(progress) == 0 || progress[len(progress)-1].Fraction != 1 {
		t.Errorf("file %+v, progress %+v", f, progress)
	}
	if !slices.Equal(commands, []string{"ffmpeg", "ffprobe"}) {
		t.Errorf("traced %v, want ffmpeg then ffprobe", commands)
	}
}

// TestNVENCOnFakeHost: on a fake GeForce the nvenc plugin reports its
// device and runs plans there, the fake failing them as an over-subscribed
// card does; a plan for another backend or device is refused.
func TestNVENCOnFakeHost(t *testing.T) {
	fake := encoderstest.NewFakeHardware(t, encoderstest.HostNVIDIA535)
	fake.Install(t)
	cfg := builtin.Config{Detect: detect.Config{Root: fake.Root}}
	p := mustNew(t, "nvenc", cfg)
	caps, err := p.Detect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const gpu = "GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)"
	if len(caps) != 4 || !caps[0].Available || caps[0].Device != gpu || caps[0].MaxSessions != 5 {
		t.Fatalf("capabilities %+v", caps)
	}
	// A fresh plugin detects before its first encode.
	p = mustNew(t, "nvenc", cfg)
	var argv []string
	_, err = p.Encode(t.Context(), encoderplugin.Request{Job: job(t, encoders.BackendNVENC), Device: gpu, Trace: func(a []string) { argv = a }}, nil)
	if ittybit.KindOf(err) != ittybit.ErrEncodeFailed || !strings.Contains(err.Error(), "OpenEncodeSessionEx failed") {
		t.Errorf("error %v, want the fake's session error", err)
	}
	if !slices.Contains(argv, "h264_nvenc") || !slices.Contains(argv, "cuda=cu:0") {
		t.Errorf("ran %v", argv)
	}
	if _, err := p.Encode(t.Context(), encoderplugin.Request{Job: job(t, encoders.BackendNVENC), Device: "GPU 7"}, nil); err == nil || !strings.Contains(err.Error(), `no device "GPU 7"`) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := p.Encode(t.Context(), encoderplugin.Request{Job: job(t, encoders.BackendSoftware)}, nil); ittybit.KindOf(err) != ittybit.ErrInternal {
		t.Errorf("software plan on nvenc: %v", err)
	}
}
