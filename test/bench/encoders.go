package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// benchEncoders encodes the clip with each software codec at each quality
// level and reports frames per second and the real-time factor, for sizing
// fleets.
func benchEncoders(ctx context.Context, e *env, c config, rep *report) error {
	clip, err := e.clip(ctx, c.encSecs)
	if err != nil {
		return err
	}
	info, err := (&probe.Prober{}).Probe(ctx, clip)
	if err != nil {
		return err
	}
	s := &section{
		title: "5. Software encoder throughput",
		intro: fmt.Sprintf("A %d s 1080p30 clip (testsrc2 with noise) encoded at its size, video only, with the argument lists ittybit runs (`encoders/ffmpeg`), "+
			"one encode at a time on this machine. Real-time factor = media seconds per wall second; frames/s from ffmpeg's progress.", c.encSecs),
		header: []string{"codec", "encoder", "quality", "rate control", "frames/s", "real-time factor", "output kbit/s"},
	}
	out := filepath.Join(e.dir, "enc")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	runner := &ffmpeg.Runner{}
	for _, codec := range encoders.VideoCodecs {
		for _, q := range encoders.Qualities {
			spec := encoders.Spec{Kind: encoders.KindVideo, Options: encoders.Options{Codec: codec, Quality: q}}
			src := info
			src.HasAudio = false // the video encoder alone
			plan, err := encoders.NewPlan(spec, src, encoders.BackendSoftware)
			if err != nil {
				return err
			}
			dst := filepath.Join(out, fmt.Sprintf("%s-%s%s", codec, q, encoders.Extension(plan.Format)))
			args, err := ffmpeg.Args(plan, clip, dst)
			if err != nil {
				return err
			}
			var frames int64
			start := time.Now()
			if err := runner.Run(ctx, args, plan.Duration, 0, func(p encoders.Progress) { frames = max(frames, p.Frames) }); err != nil {
				return fmt.Errorf("%s %s: %w", codec, q, err)
			}
			wall := time.Since(start).Seconds()
			st, _ := os.Stat(dst)
			kbps := float64(st.Size()*8) / plan.Duration / 1000
			rc := fmt.Sprintf("%s %d", plan.Video.Rate.Param, plan.Video.Rate.Value)
			s.rows = append(s.rows, []string{codec, plan.Encoder, string(q), rc, f1(float64(frames) / wall), f2(plan.Duration / wall), f0(kbps)})
			fmt.Fprintf(os.Stderr, "   %s %s: %.1f fps\n", codec, q, float64(frames)/wall)
		}
	}
	rep.add(s)
	return nil
}
