package ffmpeg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// encodeHLS encodes every rendition into a staging folder beside the
// output, writes the master playlist from what was measured, then moves
// the renditions into place and the master last, so a player that finds the
// master finds everything it names.
func encodeHLS(ctx context.Context, r *Runner, job encoders.Job, args argsFunc, progress func(encoders.Progress)) (encoders.File, error) {
	p := job.Plan
	stage, err := stageBeside(job.Output, ".ittybit-hls-*")
	if err != nil {
		return encoders.File{}, err
	}
	defer os.RemoveAll(stage)

	argv, err := args(p, job.Input, stage)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "build ffmpeg arguments: %v", err)
	}
	if err := r.Run(ctx, argv, p.Duration, expectedFrames(p), progress); err != nil {
		return encoders.File{}, err
	}
	return publishHLS(p, stage, job.Output)
}

// stageBeside makes output's folder and a staging folder in it, named
// after pattern (as os.MkdirTemp), for the caller to remove.
func stageBeside(output, pattern string) (string, error) {
	dir := filepath.Dir(output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", ittybit.Errorf(ittybit.ErrInternal, "create output folder: %v", err)
	}
	stage, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", ittybit.Errorf(ittybit.ErrInternal, "create staging folder: %v", err)
	}
	return stage, nil
}

// publishHLS writes the master playlist of the renditions encoded into
// stage, from what they measure, then moves them beside output and the
// master to output, last, so a player that finds the master finds
// everything it names.
func publishHLS(p encoders.Plan, stage, output string) (encoders.File, error) {
	dir := filepath.Dir(output)
	var err error
	result := encoders.File{Object: "file", Kind: string(p.Kind), URL: output, Format: "hls", Codec: p.Video.Codec}
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
			return encoders.File{}, ittybit.Errorf(ittybit.ErrEncodeFailed, "rendition %s: no H.264 configuration in its init segment", r.Name)
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
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "write master playlist: %v", err)
	}
	stagedMaster := filepath.Join(stage, filepath.Base(output))
	if err := os.WriteFile(stagedMaster, []byte(buf.String()), 0o644); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "write master playlist: %v", err)
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
			return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "replace %s: %v", dst, err)
		}
		if err := os.Rename(filepath.Join(stage, n), dst); err != nil {
			return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "publish rendition %s: %v", n, err)
		}
	}
	if err := os.Rename(stagedMaster, output); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "publish master playlist: %v", err)
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
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "rendition %s: %s", filepath.Base(dir), fmt.Sprintf(format, args...))
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
