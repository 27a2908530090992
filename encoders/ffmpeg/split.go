package ffmpeg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// A split encode, in ffmpeg terms:
//
//   - a video part decodes from the seek point before its start (-ss before
//     -i, which decodes and drops the frames up to the start), keeps exactly
//     its frames (-frames:v), starts with a key frame (every encode does)
//     and is written without sound to NUT, which keeps the encoder's
//     timestamps and codec parameters as they are;
//   - the audio part encodes the whole sound track once, in the result's
//     container family, so its priming and edit list are the encoder's own;
//   - the stitch joins the video parts in index order with the concat
//     demuxer, each given its exact length, adds the audio and copies
//     both into the result's container.

// partFormat is the container of a video part.
const partFormat = "nut"

// PartArgs returns the ffmpeg arguments that encode one video part of
// plan (see encoders.Split) from input to output, on dev for a hardware
// plan.
func PartArgs(plan encoders.Plan, dev Device, part encoders.Part, input, output string) ([]string, error) {
	return partArgs(plan, part, input, output, func(p encoders.Plan, in, out string) ([]string, error) { return DeviceArgs(p, dev, in, out) })
}

func partArgs(plan encoders.Plan, part encoders.Part, input, output string, args argsFunc) ([]string, error) {
	if part.Kind != encoders.PartVideo || part.Frames <= 0 {
		return nil, fmt.Errorf("part %d is not a video part with frames", part.Index)
	}
	p := plan
	p.Audio, p.Format, p.Part = nil, partFormat, nil
	p.Start, p.Trim, p.Duration = part.Start, false, float64(part.Frames)/plan.Source.FPS
	a, err := args(p, input, output)
	if err != nil {
		return nil, err
	}
	return withFrames(a, part.Frames), nil
}

// AudioPartArgs returns the ffmpeg arguments that encode the audio part of
// plan: the source's whole sound track with the plan's audio settings, in
// the container of the plan's format.
func AudioPartArgs(plan encoders.Plan, input, output string) ([]string, error) {
	if plan.Audio == nil {
		return nil, fmt.Errorf("the plan has no sound")
	}
	p := plan
	p.Kind, p.Video, p.Backend, p.Part = encoders.KindAudio, nil, encoders.BackendSoftware, nil
	return DeviceArgs(p, Device{}, input, output)
}

// encodePart runs one part of a split plan (job.Plan.Part); the file
// appears at job.Output once ffmpeg has written it whole. Whoever asked
// for the part checks it as it lands (CheckPart): the host, whatever
// plugin encoded it.
func encodePart(ctx context.Context, r *Runner, pr Prober, job encoders.Job, args argsFunc, progress func(encoders.Progress)) (encoders.File, error) {
	part := *job.Plan.Part
	plan := job.Plan
	plan.Part = nil
	dir := filepath.Dir(job.Output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "create the part's folder: %v", err)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(job.Output)+".part")
	defer os.Remove(tmp)
	var argv []string
	var err error
	switch {
	case part.Kind == encoders.PartAudio:
		argv, err = AudioPartArgs(plan, job.Input, tmp)
	case plan.Kind == encoders.KindAdaptive:
		argv, err = renditionPartArgs(plan, part, job.Input, tmp, args)
	default:
		argv, err = partArgs(plan, part, job.Input, tmp, args)
	}
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "build ffmpeg arguments: %v", err)
	}
	if err := r.Run(ctx, argv, part.End-part.Start, part.Frames, progress); err != nil {
		return encoders.File{}, err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "the part: %v", err)
	}
	if err := os.Rename(tmp, job.Output); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "publish the part: %v", err)
	}
	return encoders.File{Object: "file", Kind: string(part.Kind), URL: job.Output, Format: plan.Format, Filesize: st.Size()}, nil
}

// StitchArgs returns the ffmpeg arguments that join the video parts listed
// in the concat list file (see WriteConcatList) and the audio part, if
// any, into output in the plan's format.
func StitchArgs(plan encoders.Plan, list, audio, output string) ([]string, error) {
	a := []string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1",
		"-protocol_whitelist", "file"}
	if off := plan.Source.VideoStart; off > 0 {
		// Each part starts at 0; the picture started this much after the
		// sound, and still does.
		a = append(a, "-itsoffset", strconv.FormatFloat(off, 'f', 6, 64))
	}
	a = append(a, "-f", "concat", "-safe", "1", "-i", list)
	if audio != "" {
		a = append(a, append(probe.SafeInputArgs(), "-i", audio)...)
	}
	a = append(a, "-map", "0:v:0")
	if audio != "" {
		a = append(a, "-map", "1:a:0")
	}
	a = append(a, "-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1")
	if plan.Video != nil && plan.Video.Codec == encoders.CodecH265 && (plan.Format == "mp4" || plan.Format == "mov") {
		a = append(a, "-tag:v", "hvc1")
	}
	m, err := containerArgs(plan.Format)
	if err != nil {
		return nil, err
	}
	return append(append(a, m...), output), nil
}

// WriteConcatList writes the concat demuxer's list of the video parts, in
// index order, each with its exact length at the source's frame rate, into
// list. The part files are named relative to the list's folder.
func WriteConcatList(list string, plan encoders.Plan, parts []encoders.Part, names []string) error {
	fps, ok := encoders.ParseRatio(plan.Source.FrameRate)
	if !ok || fps <= 0 {
		return fmt.Errorf("the source's frame rate %q is unknown", plan.Source.FrameRate)
	}
	var b strings.Builder
	b.WriteString("ffconcat version 1.0\n")
	next := int64(0)
	for i, part := range parts {
		if !part.Chunk() {
			continue
		}
		if part.First != next {
			return fmt.Errorf("part %d starts at frame %d, want %d: a part is missing or out of order", part.Index, part.First, next)
		}
		next += part.Frames
		name := names[i]
		if strings.ContainsAny(name, "/\\'\n") || strings.HasPrefix(name, ".") {
			return fmt.Errorf("part file name %q is not a plain name", name)
		}
		fmt.Fprintf(&b, "file '%s'\nduration %s\n", name, strconv.FormatFloat(float64(part.Frames)/fps, 'f', -1, 64))
	}
	return os.WriteFile(list, []byte(b.String()), 0o600)
}

// CheckPart checks an encoded part against its plan: a whole rendition
// of a ladder fanned out, or its sound, must be its folder, lasting the
// plan and decoding cleanly (checkHLSPart); a video part, or a run of a
// rendition, must hold exactly the part's frames and decode without an error; the audio
// part must hold sound lasting the part's length (within a second) and
// decode without an error. A part that does not is encode_failed, to be
// encoded again.
func CheckPart(ctx context.Context, r *Runner, pr PartProber, plan encoders.Plan, part encoders.Part, path string) error {
	if plan.Kind == encoders.KindAdaptive && !part.Chunk() {
		return checkHLSPart(ctx, r, plan, part, path)
	}
	if part.Kind == encoders.PartAudio {
		info, err := pr.Probe(ctx, path)
		if err != nil {
			return ittybit.Errorf(ittybit.ErrEncodeFailed, "the audio part is not readable: %v", err)
		}
		if !info.HasAudio || info.Duration <= 0 {
			return ittybit.Errorf(ittybit.ErrEncodeFailed, "the audio part holds no sound")
		}
		if err := r.Decode(ctx, path); err != nil {
			return ittybit.Errorf(ittybit.ErrEncodeFailed, "the audio part does not decode: %v", err)
		}
		return nil
	}
	n, err := pr.CountFrames(ctx, path)
	if err != nil {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "part %d: %v", part.Index, err)
	}
	if n != part.Frames {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "part %d has %d frames, want %d", part.Index, n, part.Frames)
	}
	if err := r.Decode(ctx, path); err != nil {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "part %d does not decode: %v", part.Index, err)
	}
	return nil
}

// FrameCounter counts the video frames of a file; *probe.Prober is one.
type FrameCounter interface {
	CountFrames(ctx context.Context, path string) (int64, error)
}

// PartProber reads a part's file and counts its frames; *probe.Prober is
// one.
type PartProber interface {
	Prober
	FrameCounter
}

// Stitch joins the parts of a split plan, whose files are files (in the
// parts' order; the video parts in one folder), into output and describes
// it. A ladder fanned out is unpacked and published with its master
// playlist (assembleHLS). A video is checked as a whole: as many frames as the parts, and a clean decode across every
// join (the parts themselves were decoded whole as they landed, and the
// stitch copies them).
func Stitch(ctx context.Context, r *Runner, pr PartProber, plan encoders.Plan, parts []encoders.Part, files []string, output string) (encoders.File, error) {
	if len(files) != len(parts) {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "stitch: %d files for %d parts", len(files), len(parts))
	}
	if plan.Kind == encoders.KindAdaptive {
		return assembleHLS(ctx, r, pr, plan, parts, files, output)
	}
	if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "create output folder: %v", err)
	}
	if err := stitchVideo(ctx, r, pr, plan, parts, files, output); err != nil {
		return encoders.File{}, err
	}
	info, err := pr.Probe(ctx, output)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrEncodeFailed, "the stitched result is not readable: %v", err)
	}
	return fileFromInfo(plan, info, output), nil
}

// stitchVideo is Stitch for the parts of a video.
func stitchVideo(ctx context.Context, r *Runner, pr FrameCounter, plan encoders.Plan, parts []encoders.Part, files []string, output string) error {
	var video, names []string
	var vparts []encoders.Part
	audio := ""
	var frames int64
	for i, p := range parts {
		if p.Kind == encoders.PartAudio {
			audio = files[i]
			continue
		}
		video = append(video, files[i])
		names = append(names, filepath.Base(files[i]))
		vparts = append(vparts, p)
		frames += p.Frames
	}
	if len(video) == 0 {
		return ittybit.Errorf(ittybit.ErrInternal, "stitch: no video parts")
	}
	dir := filepath.Dir(video[0])
	for _, f := range video {
		if filepath.Dir(f) != dir {
			return ittybit.Errorf(ittybit.ErrInternal, "stitch: the video parts are not in one folder")
		}
	}
	list := filepath.Join(dir, "parts.ffconcat")
	if err := WriteConcatList(list, plan, vparts, names); err != nil {
		return ittybit.Errorf(ittybit.ErrInternal, "stitch: %v", err)
	}
	argv, err := StitchArgs(plan, list, audio, output)
	if err != nil {
		return ittybit.Errorf(ittybit.ErrInternal, "stitch: %v", err)
	}
	if err := r.Run(ctx, argv, 0, frames, func(encoders.Progress) {}); err != nil {
		return err
	}
	n, err := pr.CountFrames(ctx, output)
	if err != nil {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "stitched result: %v", err)
	}
	if n != frames {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "the stitched result has %d frames, want %d", n, frames)
	}
	// Every part was decoded whole as it landed, and the stitch copies its
	// packets as they are: what is left to check is each join, where a
	// part's first key frame must decode after the previous part.
	fps, _ := encoders.ParseRatio(plan.Source.FrameRate)
	var joins []float64
	for _, p := range vparts {
		// A quarter frame after the part's first frame: the seek lands on
		// that key frame, never on the previous part's last one.
		joins = append(joins, plan.Source.VideoStart+(float64(p.First)+0.25)/fps)
	}
	if err := r.DecodeAt(ctx, output, joins, joinCheckSeconds); err != nil {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "the stitched result does not decode across its joins: %v", err)
	}
	return nil
}

// joinCheckSeconds is how much of the picture the stitch decodes from each
// join.
const joinCheckSeconds = 1.0
