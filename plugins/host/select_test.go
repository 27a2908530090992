package host

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/encoders"
)

func row(plugin string, b encoders.Backend, codec, device string, available bool) encoders.Capability {
	return encoders.Capability{Plugin: plugin, Backend: b, Codec: codec, Device: device, Available: available}
}

func TestCandidatesOrder(t *testing.T) {
	sw := &instance{name: "software", builtin: true, caps: []encoders.Capability{
		row("software", encoders.BackendSoftware, "h264", "", true),
		{Plugin: "software", Backend: encoders.BackendSoftware, Codec: "av1", Reason: "this ffmpeg has no libsvtav1 encoder"},
	}}
	nv := &instance{name: "nvenc", builtin: true, caps: []encoders.Capability{
		row("nvenc", encoders.BackendNVENC, "h264", "GPU 0", true), row("nvenc", encoders.BackendNVENC, "h264", "GPU 1", true),
		{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: "av1", Device: "GPU 0", Reason: "this ffmpeg has no av1_nvenc encoder"},
	}}
	va := &instance{name: "vaapi", builtin: true, caps: []encoders.Capability{row("vaapi", encoders.BackendVAAPI, "h264", "/dev/dri/renderD128", true)}}
	ext := &instance{name: "x264fast", caps: []encoders.Capability{row("x264fast", encoders.BackendSoftware, "h264", "", true)}}
	odd := &instance{name: "amf", caps: []encoders.Capability{row("amf", "amf", "h264", "", true)}}
	plugins := []*instance{sw, nv, va, ext, odd}

	names := func(cs []candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.cap.Plugin+" "+c.cap.Device)
		}
		return out
	}
	// Hardware first (in plugin order), then external software, then
	// built-in software; unknown backends never.
	want := []string{"nvenc GPU 0", "nvenc GPU 1", "vaapi /dev/dri/renderD128", "x264fast ", "software "}
	if diff := cmp.Diff(want, names(candidates(plugins, "h264"))); diff != "" {
		t.Errorf("h264 (-want +got):\n%s", diff)
	}
	if got := candidates(plugins, "av1"); len(got) != 0 {
		t.Errorf("av1: %v", names(got))
	}
	if diff := cmp.Diff([]string{"software "}, names(candidates(plugins, ""))); diff != "" {
		t.Errorf("audio (-want +got):\n%s", diff)
	}
	if c, ok := softwareRetry(plugins, "h264"); !ok || c.in != sw {
		t.Errorf("retry %+v", c)
	}
	if _, ok := softwareRetry(plugins, "av1"); ok {
		t.Error("retry for av1, which software cannot encode here")
	}
	want = []string{"nvenc: this ffmpeg has no av1_nvenc encoder; software: this ffmpeg has no libsvtav1 encoder"}
	if diff := cmp.Diff(want[0], unavailableReasons(plugins, "av1")); diff != "" {
		t.Errorf("reasons (-want +got):\n%s", diff)
	}
}

func TestSessions(t *testing.T) {
	var s sessions
	r1, ok := s.acquire("nvenc\x00GPU 0", 3, 5)
	if !ok {
		t.Fatal("3 of 5")
	}
	if _, ok := s.acquire("nvenc\x00GPU 0", 3, 5); ok {
		t.Error("6 of 5 granted")
	}
	r2, ok := s.acquire("nvenc\x00GPU 0", 2, 5)
	if !ok {
		t.Fatal("5 of 5")
	}
	if _, ok := s.acquire("nvenc\x00GPU 1", 5, 5); !ok {
		t.Error("another device shares the count")
	}
	r1()
	r1() // a second release is a no-op
	if _, ok := s.acquire("nvenc\x00GPU 0", 3, 5); !ok {
		t.Error("released sessions not free again")
	}
	r2()
	if _, ok := s.acquire("software\x00", 1000, 0); !ok {
		t.Error("no limit refused")
	}
}

func TestSessionsNeeded(t *testing.T) {
	if n := sessionsNeeded(encoders.Plan{}); n != 1 {
		t.Errorf("video: %d", n)
	}
	if n := sessionsNeeded(encoders.Plan{HLS: &encoders.HLSPlan{Renditions: make([]encoders.Rendition, 4)}}); n != 4 {
		t.Errorf("4 rungs: %d", n)
	}
}

func TestCodecOf(t *testing.T) {
	for _, tc := range []struct {
		spec encoders.Spec
		want string
	}{
		{encoders.Spec{Kind: encoders.KindVideo}, "h264"},
		{encoders.Spec{Kind: encoders.KindVideo, Options: encoders.Options{Format: "webm"}}, "vp9"},
		{encoders.Spec{Kind: encoders.KindVideo, Output: "s3://b/out.webm"}, "vp9"},
		{encoders.Spec{Kind: encoders.KindVideo, Options: encoders.Options{Codec: "av1"}}, "av1"},
		{encoders.Spec{Kind: encoders.KindAdaptive}, "h264"},
		{encoders.Spec{Kind: encoders.KindAudio}, ""},
		{encoders.Spec{Kind: encoders.KindImage}, ""},
	} {
		if got := codecOf(tc.spec); got != tc.want {
			t.Errorf("codecOf(%+v) = %q, want %q", tc.spec, got, tc.want)
		}
	}
}
