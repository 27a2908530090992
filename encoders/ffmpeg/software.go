package ffmpeg

import (
	"context"
	"os"
	"path/filepath"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Prober reads what a local media file holds; *probe.Prober is one.
type Prober interface {
	Probe(ctx context.Context, path string) (encoders.MediaInfo, error)
}

// Software is the encoder of the software backend: libx264, libx265,
// libvpx-vp9, libsvtav1 and the audio and image encoders of ffmpeg.
type Software struct {
	Runner *Runner
	// Prober reads back each video output, to describe it and to prove
	// ffmpeg wrote real media (images and sounds are checked without it).
	Prober Prober
}

var _ encoders.Encoder = (*Software)(nil)

// Encode runs job and returns the file it wrote. The output appears under
// job.Output only when complete: ffmpeg writes a temporary name beside it,
// which is renamed into place after the result has been checked.
func (s *Software) Encode(ctx context.Context, job encoders.Job, progress func(encoders.Progress)) (encoders.File, error) {
	return encode(ctx, s.Runner, s.Prober, job, Args, progress)
}

// Hardware is the encoder of a hardware backend (NVENC, QSV, VAAPI) on
// one device; plans come from encoders.NewPlan for that backend. Its
// results are published like Software's.
type Hardware struct {
	Runner *Runner
	Prober Prober
	Device Device
}

var _ encoders.Encoder = (*Hardware)(nil)

// Encode runs job on the device and returns the file it wrote.
func (h *Hardware) Encode(ctx context.Context, job encoders.Job, progress func(encoders.Progress)) (encoders.File, error) {
	args := func(p encoders.Plan, in, out string) ([]string, error) { return DeviceArgs(p, h.Device, in, out) }
	return encode(ctx, h.Runner, h.Prober, job, args, progress)
}

// argsFunc builds the ffmpeg arguments of a plan: Args or DeviceArgs.
type argsFunc func(p encoders.Plan, input, output string) ([]string, error)

// encode runs job with the arguments args builds, writing a temporary file
// beside the output and publishing it once probed.
func encode(ctx context.Context, r *Runner, pr Prober, job encoders.Job, args argsFunc, progress func(encoders.Progress)) (encoders.File, error) {
	if job.Plan.Part != nil {
		if job.Plan.Kind == encoders.KindAdaptive && !job.Plan.Part.Chunk() {
			return encodeHLSPart(ctx, r, job, args, progress)
		}
		return encodePart(ctx, r, pr, job, args, progress)
	}
	if job.Plan.Kind == encoders.KindAdaptive {
		return encodeHLS(ctx, r, job, args, progress)
	}
	dir := filepath.Dir(job.Output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "create output folder: %v", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(job.Output)+".part-*")
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "create output file: %v", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName) // a no-op once renamed

	argv, err := args(job.Plan, job.Input, tmpName)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "build ffmpeg arguments: %v", err)
	}
	rep, err := r.RunReport(ctx, argv, job.Plan.Duration, expectedFrames(job.Plan), progress)
	if err != nil {
		return encoders.File{}, err
	}
	st, err := os.Stat(tmpName)
	if err != nil || st.Size() == 0 {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg produced no output: nothing to encode between start and end")
	}
	// Images and sounds are described from the plan and ffmpeg's report
	// (describe.go); videos are probed.
	f, described, err := describe(job.Plan, rep, tmpName, st.Size())
	if err != nil {
		return encoders.File{}, err
	}
	if !described {
		info, err := pr.Probe(ctx, tmpName)
		if err != nil {
			return encoders.File{}, ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg wrote no readable output: %v", err)
		}
		f = fileFromInfo(job.Plan, info, tmpName)
	}
	// CreateTemp makes the file private; the result is an ordinary file.
	if err := os.Chmod(tmpName, 0o644); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "publish output: %v", err)
	}
	if err := os.Rename(tmpName, job.Output); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "publish output: %v", err)
	}
	f.URL = job.Output
	return f, nil
}

// expectedFrames estimates the output's frame count, for progress when
// the duration is unknown.
func expectedFrames(p encoders.Plan) int64 {
	if p.Kind == encoders.KindImage {
		return 1
	}
	fps := p.Source.FPS
	if p.Video != nil && p.Video.FPS != "" {
		fps, _ = encoders.ParseRatio(p.Video.FPS)
	}
	if p.Duration > 0 && fps > 0 {
		return int64(p.Duration * fps)
	}
	return p.Source.Frames
}

// CodecName maps ffprobe's codec names to the API's ("hevc" is "h265").
func CodecName(probed string) string {
	switch probed {
	case "hevc":
		return encoders.CodecH265
	case "mjpeg":
		return "jpeg"
	}
	return probed
}

func fileFromInfo(p encoders.Plan, m encoders.MediaInfo, path string) encoders.File {
	f := encoders.File{
		Object: "file", Kind: string(p.Kind), URL: path, Format: p.Format,
		Width: m.Width, Height: m.Height, FPS: m.FPS, Filesize: m.Filesize,
		Duration: m.Duration, Bitrate: m.Bitrate,
	}
	switch p.Kind {
	case encoders.KindAudio:
		f.Codec = CodecName(m.Codecs.Audio)
		f.Width, f.Height, f.FPS = 0, 0, 0
	case encoders.KindImage:
		f.Codec = p.Format
		f.Duration, f.FPS, f.Bitrate = 0, 0, 0
	default:
		f.Codec = CodecName(m.Codecs.Video)
	}
	if f.Bitrate == 0 && f.Duration > 0 && p.Kind != encoders.KindImage {
		f.Bitrate = int64(float64(f.Filesize*8) / f.Duration)
	}
	return f
}
