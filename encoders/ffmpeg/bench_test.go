package ffmpeg_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// BenchmarkEncodeOverhead encodes the same clip through Software.Encode
// (ffmpeg with -progress, a probe of the result, an atomic rename) and with
// the very same ffmpeg command run bare: the ratio of the two is our cost.
func BenchmarkEncodeOverhead(b *testing.B) {
	in := clips.Path(b, encoderstest.Long)
	prober := &probe.Prober{}
	info, err := prober.Probe(b.Context(), in)
	if err != nil {
		b.Fatal(err)
	}
	plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindVideo, Options: encoders.Options{Width: encoders.Px(320)}}, info, encoders.BackendSoftware)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.Run("ittybit", func(b *testing.B) {
		enc := &ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: prober}
		for b.Loop() {
			if _, err := enc.Encode(b.Context(), encoders.Job{Plan: plan, Input: in, Output: filepath.Join(dir, "a.mp4")}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare-ffmpeg", func(b *testing.B) {
		args, err := ffmpeg.Args(plan, in, filepath.Join(dir, "b.mp4"))
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
				b.Fatalf("%v %s", err, out)
			}
		}
	})
}

// BenchmarkPlanAndArgs measures validating, planning and rendering the
// arguments of the seed's video example.
func BenchmarkPlanAndArgs(b *testing.B) {
	spec := encoders.Spec{Kind: encoders.KindAdaptive, Input: "https://example.com/a.mov", Options: encoders.Options{Quality: encoders.QualityHigh}}
	src := encoders.MediaInfo{Format: "mov", Duration: 60, Width: 1920, Height: 1080, FPS: 30, FrameRate: "30/1", HasVideo: true, HasAudio: true, AudioChannels: 2}
	for b.Loop() {
		if err := encoders.Validate(spec, encoders.Policy{}); err != nil {
			b.Fatal(err)
		}
		p, err := encoders.NewPlan(spec, src, encoders.BackendSoftware)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ffmpeg.Args(p, "in.mov", "out"); err != nil {
			b.Fatal(err)
		}
	}
}
