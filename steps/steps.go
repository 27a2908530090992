// Package steps does the work of a task's steps, probe → ingest → encode
// → upload, for both the node agent and the CLI's local mode. What a step
// makes (its output object, the encode step's options, its errors) is
// decided here once; where the files live is the caller's (Files): the
// agent keeps them in managed storage, so that any node can run the next
// step, the local mode on this machine's disk.
package steps

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Prober reads what a local media file holds, and counts a video's
// frames; *probe.Prober is one.
type Prober interface {
	Probe(ctx context.Context, path string) (encoders.MediaInfo, error)
	CountFrames(ctx context.Context, path string) (int64, error)
}

// Stitcher checks each part of a split encode as it lands, whatever
// plugin encoded it, and joins the parts, whose files are files (in the
// parts' order), into output, checking the whole; the agent's runs
// ffmpeg.CheckPart and ffmpeg.Stitch.
type Stitcher interface {
	Check(ctx context.Context, plan encoders.Plan, part encoders.Part, path string) error
	// Stitch returns the result, described as an unsplit encode's is.
	Stitch(ctx context.Context, plan encoders.Plan, parts []encoders.Part, files []string, output string) (encoders.File, error)
}

// MinCountFramesFrom is the shortest video source whose frames a probe
// step may be asked to count (Step.CountFramesFrom): a cluster splits no
// shorter source.
const MinCountFramesFrom = 10.0

// Encoder runs an encode: it picks an encoder plugin, plans for its
// backend and encodes, falling back to software; *host.Host is one.
type Encoder interface {
	Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error)
}

// Files is where a task's files live between its steps: how the source
// comes to this machine and is kept, where an encode writes, and how its
// result is kept and delivered. A method returns errors of the
// ittybit.ErrorKind vocabulary (fetch_failed, upload_failed, …).
type Files interface {
	// Source returns a local path holding the task's input, fetched from
	// its origin when this machine has no copy yet. progress, which may be
	// nil, hears of the download.
	Source(ctx context.Context, t api.AssignedTask, progress func(encoders.Progress)) (string, error)
	// Ingest keeps the source, at path, for every later step and retry,
	// and returns its URL.
	Ingest(ctx context.Context, t api.AssignedTask, path string) (string, error)
	// Ingested returns a local path holding the ingested source.
	Ingested(ctx context.Context, t api.AssignedTask) (string, error)
	// EncodeTo returns the file an attempt's encode writes (for
	// adaptive_video the master playlist), in a folder that holds nothing
	// else of the attempt.
	EncodeTo(t api.AssignedTask, attempt int) (string, error)
	// Stage keeps an attempt's result, whose URLs are the local paths the
	// encoder wrote, until the upload step, and returns it with the URLs
	// it is kept at.
	Stage(ctx context.Context, t api.AssignedTask, attempt int, result encoders.File) (encoders.File, error)
	// Deliver puts the staged result where the task asked for it and
	// returns it with its final URLs.
	Deliver(ctx context.Context, t api.AssignedTask, staged encoders.File) (encoders.File, error)
	// PartTo returns the file an attempt at a part of a split step writes.
	PartTo(t api.AssignedTask, part api.Part, attempt int) (string, error)
	// KeepPart keeps an attempt's part, written at path, for the stitch.
	KeepPart(ctx context.Context, t api.AssignedTask, part api.Part, attempt int, path string) error
	// GetPart puts the kept file of a completed part at path.
	GetPart(ctx context.Context, t api.AssignedTask, part api.Part, path string) error
}

// Runner runs steps.
type Runner struct {
	Prober  Prober
	Encoder Encoder
	Files   Files
	// Stitcher joins a split step's parts; nil where no step is split
	// (the local mode).
	Stitcher Stitcher
	// Trace, when set, is called with each command an encode runs (the
	// CLI's --debug).
	Trace func(argv []string)
}

// Step is one step of a task to run.
type Step struct {
	Task api.AssignedTask
	// Kind is the step's kind: probe, ingest, upload or the task's kind.
	Kind    string
	Attempt int
	// Progress, when set, hears how far the step is.
	Progress func(encoders.Progress)
	// LogArgs are added to the log lines about an encode (task_id, …).
	LogArgs []any
	// Part, when set, is the part of the encode step to run, not the
	// whole step.
	Part *api.Part
	// CountFramesFrom, when above 0, has the probe step count the frames
	// of a video source of at least this many seconds, which a split needs
	// exactly (and refuse one that holds far fewer than it says); the
	// leader tells its agents, 0 where nothing is split.
	CountFramesFrom float64
}

// Outcome is what a completed step leaves on its task: the step's output
// object and, for the encode step, the options it resolved.
type Outcome struct {
	Output  any
	Options map[string]any
}

// Run does the work of one step. The steps before it have completed: their
// outputs are on s.Task.
func (r *Runner) Run(ctx context.Context, s Step) (Outcome, error) {
	switch {
	case s.Kind == api.StepProbe:
		info, err := r.probe(ctx, s)
		return Outcome{Output: info}, err
	case s.Kind == api.StepIngest:
		f, err := r.ingest(ctx, s)
		return Outcome{Output: f}, err
	case s.Kind == string(s.Task.Kind) && s.Task.Kind.Valid() && s.Part != nil:
		return r.encodePart(ctx, s)
	case s.Kind == string(s.Task.Kind) && s.Task.Kind.Valid() && splitStep(s.Task, s.Kind) != nil:
		return r.stitch(ctx, s, splitStep(s.Task, s.Kind))
	case s.Kind == string(s.Task.Kind) && s.Task.Kind.Valid():
		return r.encode(ctx, s)
	case s.Kind == api.StepUpload:
		f, err := r.upload(ctx, s)
		return Outcome{Output: f}, err
	}
	return Outcome{}, ittybit.Errorf(ittybit.ErrInternal, "unknown step kind %q for a %s task", s.Kind, s.Task.Kind)
}

// Spec is the task's request as encoders sees it.
func Spec(t api.AssignedTask) encoders.Spec {
	s := encoders.Spec{Kind: t.Kind, Input: t.Input, Options: t.Options}
	if t.Output != nil {
		s.Output = *t.Output
	}
	return s
}

// Output decodes the output of the task's step of a kind.
func Output(t api.AssignedTask, kind string, v any) error {
	for _, s := range t.Steps {
		if s.Kind == kind {
			if len(s.Output) == 0 {
				return ittybit.Errorf(ittybit.ErrInternal, "the %s step left no output", kind)
			}
			if err := json.Unmarshal(s.Output, v); err != nil {
				return ittybit.Errorf(ittybit.ErrInternal, "read the %s step's output: %v", kind, err)
			}
			return nil
		}
	}
	return ittybit.Errorf(ittybit.ErrInternal, "no %s step", kind)
}

// probe reads the source and refuses what the task cannot make (a video
// task from audio, a start past the end), before anything is kept.
func (r *Runner) probe(ctx context.Context, s Step) (encoders.MediaInfo, error) {
	src, err := r.Files.Source(ctx, s.Task, s.Progress)
	if err != nil {
		return encoders.MediaInfo{}, err
	}
	info, err := r.Prober.Probe(ctx, src)
	if err != nil {
		return encoders.MediaInfo{}, err
	}
	if _, err := encoders.NewPlan(Spec(s.Task), info, encoders.BackendSoftware); err != nil {
		return encoders.MediaInfo{}, err
	}
	if from := s.CountFramesFrom; from > 0 && (s.Task.Kind == encoders.KindVideo || s.Task.Kind == encoders.KindAdaptive) && info.HasVideo && !info.Still && info.Duration >= from {
		if err := r.countFrames(ctx, src, &info); err != nil {
			return encoders.MediaInfo{}, err
		}
	}
	return info, nil
}

// countFrames counts a long video's frames, which a split needs exactly,
// and refuses a file that holds far fewer than its header says (cut short
// on its way): encoding it would make a short result called complete.
func (r *Runner) countFrames(ctx context.Context, src string, info *encoders.MediaInfo) error {
	n, err := r.Prober.CountFrames(ctx, src)
	if err != nil {
		return err
	}
	length := info.VideoDuration
	if length <= 0 {
		length = info.Duration
	}
	if fps, ok := encoders.ParseRatio(info.FrameRate); ok && fps > 0 && !info.VariableFrameRate {
		if held := float64(n) / fps; held < length-max(1, 0.05*length) {
			return ittybit.Errorf(ittybit.ErrInvalidMedia, "the input holds %d frames (%.1f s) though it says it lasts %.1f s: it is cut short", n, held, length)
		}
	}
	info.Frames, info.FramesCounted = n, true
	return nil
}

// splitStep returns the parts of the task's step of a kind when it was
// split and every part has completed (its run is the stitch); nil else.
func splitStep(t api.AssignedTask, kind string) []api.Part {
	for _, s := range t.Steps {
		if s.Kind == kind && len(s.Parts) > 0 && api.PartsDone(s.Parts) {
			return s.Parts
		}
	}
	return nil
}

// mediaPart is a part as encoders plans it.
func mediaPart(p api.Part) encoders.Part {
	mp := encoders.Part{Index: p.Index, Kind: encoders.PartKind(p.Kind), Start: p.Start, End: p.End, First: p.FirstFrame, Frames: p.Frames}
	if p.Rendition != nil {
		mp.Rendition = *p.Rendition
	}
	return mp
}

// encodePart encodes one part of a split step and keeps its file for the
// stitch. The part's output is its frame count and size.
func (r *Runner) encodePart(ctx context.Context, s Step) (Outcome, error) {
	if r.Stitcher == nil {
		return Outcome{}, ittybit.Errorf(ittybit.ErrInternal, "this runner cannot run parts of a split step")
	}
	info, src, err := r.source(ctx, s)
	if err != nil {
		return Outcome{}, err
	}
	out, err := r.Files.PartTo(s.Task, *s.Part, s.Attempt)
	if err != nil {
		return Outcome{}, err
	}
	progress := s.Progress
	if progress == nil {
		progress = func(encoders.Progress) {}
	}
	part := mediaPart(*s.Part)
	req := encoders.Request{Spec: Spec(s.Task), Source: info, Input: src, Output: out, Trace: r.Trace, LogArgs: s.LogArgs, Part: &part}
	res, err := r.Encoder.Encode(ctx, req, progress)
	if err != nil {
		return Outcome{}, err
	}
	plan, err := encoders.NewPlan(Spec(s.Task), info, encoders.BackendSoftware)
	if err != nil {
		return Outcome{}, err
	}
	if err := r.Stitcher.Check(ctx, plan, part, out); err != nil {
		os.Remove(out)
		return Outcome{}, err // encode_failed: the part runs again
	}
	if err := r.Files.KeepPart(ctx, s.Task, *s.Part, s.Attempt, out); err != nil {
		return Outcome{}, err
	}
	return Outcome{Output: map[string]any{"frames": part.Frames, "filesize": res.File.Filesize, "encoder": res.Encoder}}, nil
}

// stitch joins a split step's parts into the step's result, staged as an
// unsplit encode's would be.
func (r *Runner) stitch(ctx context.Context, s Step, parts []api.Part) (Outcome, error) {
	if r.Stitcher == nil {
		return Outcome{}, ittybit.Errorf(ittybit.ErrInternal, "this runner cannot stitch a split step")
	}
	var info encoders.MediaInfo
	if err := Output(s.Task, api.StepProbe, &info); err != nil {
		return Outcome{}, err
	}
	plan, err := encoders.NewPlan(Spec(s.Task), info, encoders.BackendSoftware)
	if err != nil {
		return Outcome{}, err
	}
	out, err := r.Files.EncodeTo(s.Task, s.Attempt)
	if err != nil {
		return Outcome{}, err
	}
	// The parts gather beside the encode's folder, not in it: what is in
	// it is the result (an HLS ladder is staged whole).
	dir := filepath.Dir(out) + ".parts"
	defer os.RemoveAll(dir)
	mparts := make([]encoders.Part, len(parts))
	files := make([]string, len(parts))
	for i, p := range parts {
		mparts[i] = mediaPart(p)
		files[i] = filepath.Join(dir, encoders.PartFile(mparts[i], plan.Format))
		if err := r.Files.GetPart(ctx, s.Task, p, files[i]); err != nil {
			return Outcome{}, err
		}
	}
	res, err := r.Stitcher.Stitch(ctx, plan, mparts, files, out)
	if err != nil {
		return Outcome{}, err
	}
	file, err := r.Files.Stage(ctx, s.Task, s.Attempt, res)
	if err != nil {
		return Outcome{}, err
	}
	opts := encodeOptions(encoders.Result{Plan: plan, Encoder: plan.Encoder})
	opts["parts"] = len(parts)
	delete(opts, "plugin")
	return Outcome{Output: file, Options: opts}, nil
}

// ingest keeps the source, so that a retry or another node never goes
// back to the origin, and describes it as a file object.
func (r *Runner) ingest(ctx context.Context, s Step) (encoders.File, error) {
	var info encoders.MediaInfo
	if err := Output(s.Task, api.StepProbe, &info); err != nil {
		return encoders.File{}, err
	}
	src, err := r.Files.Source(ctx, s.Task, nil)
	if err != nil {
		return encoders.File{}, err
	}
	url, err := r.Files.Ingest(ctx, s.Task, src)
	if err != nil {
		return encoders.File{}, err
	}
	return encoders.File{
		Object: "file", Kind: sourceKind(info), URL: url, Format: info.Format,
		Codec: firstNonEmpty(info.Codecs.Video, info.Codecs.Audio), Width: info.Width, Height: info.Height,
		Duration: info.Duration, FPS: info.FPS, Filesize: info.Filesize, Bitrate: info.Bitrate,
	}, nil
}

// sourceKind is what a probed source is: image, video or audio.
func sourceKind(m encoders.MediaInfo) string {
	switch {
	case m.HasVideo && m.Still:
		return "image"
	case m.HasVideo:
		return "video"
	}
	return "audio"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// encode runs the encode with the best encoder for the codec and stages
// the result. The step's options are the plan that ran (without the probe
// it was made from, the probe step's output), the encoder and plugin that
// ran it and, when a first attempt failed, the fallback.
func (r *Runner) encode(ctx context.Context, s Step) (Outcome, error) {
	info, src, err := r.source(ctx, s)
	if err != nil {
		return Outcome{}, err
	}
	out, err := r.Files.EncodeTo(s.Task, s.Attempt)
	if err != nil {
		return Outcome{}, err
	}
	progress := s.Progress
	if progress == nil {
		progress = func(encoders.Progress) {}
	}
	req := encoders.Request{Spec: Spec(s.Task), Source: info, Input: src, Output: out, Trace: r.Trace, LogArgs: s.LogArgs}
	res, err := r.Encoder.Encode(ctx, req, progress)
	if err != nil {
		return Outcome{}, err
	}
	file, err := r.Files.Stage(ctx, s.Task, s.Attempt, res.File)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Output: file, Options: encodeOptions(res)}, nil
}

// source is what an encode reads: the probe of the source and the
// ingested source on this machine.
func (r *Runner) source(ctx context.Context, s Step) (encoders.MediaInfo, string, error) {
	var info encoders.MediaInfo
	if err := Output(s.Task, api.StepProbe, &info); err != nil {
		return info, "", err
	}
	src, err := r.Files.Ingested(ctx, s.Task)
	return info, src, err
}

// encodeOptions is the encode step's options for a result.
func encodeOptions(res encoders.Result) map[string]any {
	opts := map[string]any{}
	if b, err := json.Marshal(res.Plan); err == nil {
		_ = json.Unmarshal(b, &opts)
	}
	delete(opts, "source")
	opts["encoder"], opts["plugin"] = res.Encoder, res.Plugin
	if res.Fallback != nil {
		opts["fallback"] = res.Fallback
	}
	return opts
}

// upload delivers the staged result.
func (r *Runner) upload(ctx context.Context, s Step) (encoders.File, error) {
	var staged encoders.File
	if err := Output(s.Task, string(s.Task.Kind), &staged); err != nil {
		return encoders.File{}, err
	}
	return r.Files.Deliver(ctx, s.Task, staged)
}

// ResultName is the file name of a task's result: output.mp4, …, or for
// adaptive_video master.m3u8.
func ResultName(t api.AssignedTask) string {
	if t.Kind == encoders.KindAdaptive {
		return "master.m3u8"
	}
	return "output" + encoders.Extension(ResultFormat(t))
}

// ResultFormat is the format of a task's result.
func ResultFormat(t api.AssignedTask) string {
	out := ""
	if t.Output != nil {
		out = *t.Output
	}
	return encoders.Defaults(t.Kind, t.Options, out).Format
}

// SourceName is the file name a fetched input is kept under: "source"
// with the input's extension, so that a probe detects what the name
// suggests as it does for a local file (Wall.jpg probes as image2, not as
// a headerless JPEG stream). The probe's demuxer allow-list, not the name,
// decides what may be read.
func SourceName(input string) string {
	p := input
	if i := strings.IndexAny(p, "?#"); i >= 0 && strings.Contains(p, "://") {
		p = p[:i]
	}
	ext := strings.ToLower(path.Ext(p))
	if len(ext) < 2 || len(ext) > 6 {
		return "source"
	}
	for _, c := range ext[1:] {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return "source"
		}
	}
	return "source" + ext
}
