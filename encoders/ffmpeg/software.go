package ffmpeg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	// Prober reads back each output, to describe it and to prove ffmpeg
	// wrote real media.
	Prober Prober
}

var _ encoders.Encoder = (*Software)(nil)

// Encode runs job and returns the file it wrote. The output appears under
// job.Output only when complete: ffmpeg writes a temporary name beside it,
// which is renamed into place after the result has been probed.
func (s *Software) Encode(ctx context.Context, job encoders.Job, progress func(encoders.Progress)) (encoders.File, error) {
	if job.Plan.Kind == encoders.KindAdaptive {
		return s.encodeHLS(ctx, job, progress)
	}
	dir := filepath.Dir(job.Output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "create output folder: %v", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(job.Output)+".part-*")
	if err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "create output file: %v", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName) // a no-op once renamed

	args, err := Args(job.Plan, job.Input, tmpName)
	if err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "build ffmpeg arguments: %v", err)
	}
	if err := s.Runner.Run(ctx, args, job.Plan.Duration, expectedFrames(job.Plan), progress); err != nil {
		return encoders.File{}, err
	}
	if st, err := os.Stat(tmpName); err != nil || st.Size() == 0 {
		return encoders.File{}, encoders.Errorf(encoders.ErrEncodeFailed, "ffmpeg produced no output: nothing to encode between start and end")
	}
	info, err := s.Prober.Probe(ctx, tmpName)
	if err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrEncodeFailed, "ffmpeg wrote no readable output: %v", err)
	}
	// CreateTemp makes the file private; the result is an ordinary file.
	if err := os.Chmod(tmpName, 0o644); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "publish output: %v", err)
	}
	if err := os.Rename(tmpName, job.Output); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "publish output: %v", err)
	}
	return fileFromInfo(job.Plan, info, job.Output), nil
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

// encodeHLS encodes every rendition into a staging folder beside the
// output, writes the master playlist from what was measured, then moves
// the renditions into place and the master last, so a player that finds the
// master finds everything it names.
func (s *Software) encodeHLS(ctx context.Context, job encoders.Job, progress func(encoders.Progress)) (encoders.File, error) {
	p := job.Plan
	dir := filepath.Dir(job.Output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "create output folder: %v", err)
	}
	stage, err := os.MkdirTemp(dir, ".ittybit-hls-*")
	if err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "create staging folder: %v", err)
	}
	defer os.RemoveAll(stage)

	args, err := Args(p, job.Input, stage)
	if err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "build ffmpeg arguments: %v", err)
	}
	if err := s.Runner.Run(ctx, args, p.Duration, expectedFrames(p), progress); err != nil {
		return encoders.File{}, err
	}

	result := encoders.File{Object: "file", Kind: string(p.Kind), URL: job.Output, Format: "hls", Codec: p.Video.Codec}
	var master Master
	var audio *renditionReport
	if p.Audio != nil {
		audio, err = readRendition(filepath.Join(stage, hlsAudioName))
		if err != nil {
			return encoders.File{}, err
		}
		master.Audio = []AudioRendition{{GroupID: hlsAudioName, Name: "default", URI: hlsAudioName + "/index.m3u8", Channels: p.Audio.Channels, Default: true}}
	}
	for _, r := range p.HLS.Renditions {
		rep, err := readRendition(filepath.Join(stage, r.Name))
		if err != nil {
			return encoders.File{}, err
		}
		codec, ok := AVCCodecString(rep.init)
		if !ok {
			return encoders.File{}, encoders.Errorf(encoders.ErrEncodeFailed, "rendition %s: no H.264 configuration in its init segment", r.Name)
		}
		v := Variant{
			URI: r.Name + "/index.m3u8", Bandwidth: rep.rates.Peak, AverageBandwidth: rep.rates.Average,
			Width: r.Width, Height: r.Height, FrameRate: renditionFPS(p, r), Codecs: codec,
		}
		if audio != nil {
			v.Bandwidth += audio.rates.Peak
			v.AverageBandwidth += audio.rates.Average
			v.Codecs += ",mp4a.40.2"
			v.Audio = hlsAudioName
		}
		master.Variants = append(master.Variants, v)
		result.Renditions = append(result.Renditions, encoders.File{
			Object: "file", Kind: string(encoders.KindVideo), URL: filepath.Join(dir, r.Name, "index.m3u8"),
			Format: "hls", Codec: p.Video.Codec, Width: r.Width, Height: r.Height, FPS: v.FrameRate,
			Duration: rep.duration, Filesize: rep.bytes, Bitrate: rep.rates.Average,
		})
		result.Filesize += rep.bytes
		if result.Width == 0 {
			result.Width, result.Height, result.FPS, result.Duration = r.Width, r.Height, v.FrameRate, rep.duration
			result.Bitrate = v.AverageBandwidth
		}
	}
	if audio != nil {
		result.Renditions = append(result.Renditions, encoders.File{
			Object: "file", Kind: string(encoders.KindAudio), URL: filepath.Join(dir, hlsAudioName, "index.m3u8"),
			Format: "hls", Codec: "aac", Duration: audio.duration, Filesize: audio.bytes, Bitrate: audio.rates.Average,
		})
		result.Filesize += audio.bytes
	}
	var buf strings.Builder
	if err := WriteMaster(&buf, master); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "write master playlist: %v", err)
	}
	stagedMaster := filepath.Join(stage, filepath.Base(job.Output))
	if err := os.WriteFile(stagedMaster, []byte(buf.String()), 0o644); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "write master playlist: %v", err)
	}
	result.Filesize += int64(buf.Len())

	names := []string{}
	for _, r := range p.HLS.Renditions {
		names = append(names, r.Name)
	}
	if audio != nil {
		names = append(names, hlsAudioName)
	}
	for _, n := range names {
		dst := filepath.Join(dir, n)
		if err := os.RemoveAll(dst); err != nil {
			return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "replace %s: %v", dst, err)
		}
		if err := os.Rename(filepath.Join(stage, n), dst); err != nil {
			return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "publish rendition %s: %v", n, err)
		}
	}
	if err := os.Rename(stagedMaster, job.Output); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrInternal, "publish master playlist: %v", err)
	}
	return result, nil
}

func renditionFPS(p encoders.Plan, r encoders.Rendition) float64 {
	fps := r.FPS
	if fps == "" {
		fps = p.Video.FPS
	}
	if fps == "" {
		return p.Source.FPS
	}
	f, _ := encoders.ParseRatio(fps)
	return f
}

// renditionReport is what one rendition folder holds.
type renditionReport struct {
	init     []byte
	rates    Rates
	duration float64
	bytes    int64
}

func readRendition(dir string) (*renditionReport, error) {
	fail := func(format string, args ...any) error {
		return encoders.Errorf(encoders.ErrEncodeFailed, "rendition %s: %s", filepath.Base(dir), fmt.Sprintf(format, args...))
	}
	data, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
	if err != nil {
		return nil, fail("no playlist: %v", err)
	}
	pl, err := ParseMediaPlaylist(data)
	if err != nil {
		return nil, fail("%v", err)
	}
	if len(pl.Segments) == 0 {
		return nil, fail("no segments")
	}
	rep := &renditionReport{bytes: int64(len(data))}
	if pl.Map != "" {
		if rep.init, err = os.ReadFile(filepath.Join(dir, filepath.Base(pl.Map))); err != nil {
			return nil, fail("no init segment: %v", err)
		}
		rep.bytes += int64(len(rep.init))
	}
	sizes := make([]int64, len(pl.Segments))
	for i, seg := range pl.Segments {
		st, err := os.Stat(filepath.Join(dir, filepath.Base(seg.URI)))
		if err != nil {
			return nil, fail("segment missing: %v", err)
		}
		sizes[i] = st.Size()
		rep.bytes += st.Size()
		rep.duration += seg.Duration
	}
	rep.rates = MeasureRates(pl.Segments, sizes)
	return rep, nil
}
