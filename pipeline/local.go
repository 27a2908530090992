// Package pipeline runs a task's steps (probe → ingest → encode → upload) on
// this machine, for the CLI's local mode: the same steps, options, plan and
// results as a task in the cluster, reported as the same task object.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Fetcher downloads an http(s) input; *storage.Fetcher is one.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string, w io.Writer) (int64, error)
}

// Prober reads what a local media file holds; *probe.Prober is one.
type Prober interface {
	Probe(ctx context.Context, path string) (encoders.MediaInfo, error)
}

// Encoder runs an encode step: it picks an encoder plugin, plans for its
// backend and encodes, falling back to software; *host.Host is one.
type Encoder interface {
	Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error)
}

// Local runs tasks on this machine.
type Local struct {
	Fetcher Fetcher
	Prober  Prober
	Encoder Encoder
	// Trace, when set, is called with each command the encode step runs.
	Trace func(argv []string)
	// WorkDir holds downloads while a task runs; "" means the system's
	// temporary folder.
	WorkDir string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Progress reports a step's progress: the step kind and how far it is.
type Progress func(step string, p encoders.Progress)

// Run carries out spec, whose Input is a local path or an http(s) URL, and
// writes the result to output, a local path (for adaptive_video, the master
// playlist). It returns the task as the API would show it when it ended,
// and the error that failed it, if any.
func (l *Local) Run(ctx context.Context, spec encoders.Spec, output string, progress Progress) (*api.Task, error) {
	if progress == nil {
		progress = func(string, encoders.Progress) {}
	}
	r := &run{l: l, task: l.newTask(spec)}
	err := r.steps(ctx, spec, output, progress)
	r.finish(err)
	return r.task, err
}

type run struct {
	l    *Local
	task *api.Task
}

func (l *Local) now() int64 {
	if l.Now != nil {
		return l.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}

func (l *Local) newTask(spec encoders.Spec) *api.Task {
	now := l.now()
	t := &api.Task{
		ID: newID("task"), Object: "task", Kind: spec.Kind, Input: spec.Input, Options: spec.Options,
		Metadata: json.RawMessage("{}"), Status: api.TaskQueued, CreatedAt: now, UpdatedAt: now,
	}
	for _, k := range api.StepKinds(spec.Kind) {
		t.Steps = append(t.Steps, api.Step{
			ID: newID("step"), Object: "step", Kind: k, Options: json.RawMessage("{}"),
			Status: api.StepWaiting, CreatedAt: now, UpdatedAt: now,
		})
	}
	return t
}

// begin marks step i processing and returns a function that ends it with
// its output and error.
func (r *run) begin(i int) func(out any, err error) {
	now := r.l.now()
	s := &r.task.Steps[i]
	s.Status, s.StartedAt, s.UpdatedAt, s.Attempt = api.StepProcessing, &now, now, 1
	zero := 0.0
	s.Progress = &zero
	if r.task.StartedAt == nil {
		r.task.StartedAt = &now
		r.task.Status = api.TaskProcessing
	}
	return func(out any, err error) {
		end := r.l.now()
		s.FinishedAt, s.UpdatedAt = &end, end
		if err != nil {
			s.Status = api.StepFailed
			s.Error = api.FromError(err)
			return
		}
		one := 1.0
		s.Status, s.Progress = api.StepCompleted, &one
		if out != nil {
			s.Output, _ = json.Marshal(out)
		}
	}
}

func (r *run) finish(err error) {
	now := r.l.now()
	r.task.FinishedAt, r.task.UpdatedAt = &now, now
	if err == nil {
		r.task.Status = api.TaskCompleted
		return
	}
	r.task.Status = api.TaskFailed
	r.task.Error = api.FromError(err)
	for i := range r.task.Steps {
		if r.task.Steps[i].Status == api.StepWaiting {
			r.task.Steps[i].Status = api.StepCancelled
			r.task.Steps[i].UpdatedAt = now
		}
	}
	if k := encoders.KindOf(err); k == encoders.ErrCancelled {
		r.task.Status = api.TaskCancelled
	}
}

func (r *run) steps(ctx context.Context, spec encoders.Spec, output string, progress Progress) error {
	l := r.l
	// probe: bring the source to local disk, then read it.
	end := r.begin(0)
	src, cleanup, err := l.localSource(ctx, spec.Input, func(p encoders.Progress) { progress(api.StepProbe, p) })
	defer cleanup()
	if err != nil {
		end(nil, err)
		return err
	}
	info, err := l.Prober.Probe(ctx, src)
	end(info, err)
	if err != nil {
		return err
	}

	// ingest: locally, the source file is the stored source.
	end = r.begin(1)
	abs, _ := filepath.Abs(src)
	end(encoders.File{
		Object: "file", Kind: sourceKind(info), URL: "file://" + abs, Format: info.Format, Codec: info.Codecs.Video,
		Width: info.Width, Height: info.Height, Duration: info.Duration, FPS: info.FPS,
		Filesize: info.Filesize, Bitrate: info.Bitrate,
	}, nil)

	// encode: the step's options are the plan that ran, with the encoder
	// used and, when a first attempt failed, the fallback.
	end = r.begin(2)
	// What no backend can make (a start past the end, …) fails here,
	// before any encoder starts.
	if _, err := encoders.NewPlan(spec, info, encoders.BackendSoftware); err != nil {
		end(nil, err)
		return err
	}
	res, err := l.Encoder.Encode(ctx, encoders.Request{Spec: spec, Source: info, Input: src, Output: output, Trace: l.Trace}, func(p encoders.Progress) {
		r.task.Steps[2].Progress = &p.Fraction
		progress(string(spec.Kind), p)
	})
	if res.Plan.Kind != "" {
		r.task.Steps[2].Options, _ = json.Marshal(encodeOptions{Plan: res.Plan, Fallback: res.Fallback})
	}
	file := res.File
	end(file, err)
	if err != nil {
		return err
	}

	// upload: the encoder published the file at output.
	end = r.begin(3)
	out := file
	out.URL = "file://" + absPath(file.URL)
	for i := range out.Renditions {
		out.Renditions[i].URL = "file://" + absPath(out.Renditions[i].URL)
	}
	end(out, nil)
	r.task.Output = &out.URL
	return nil
}

// encodeOptions is the encode step's options: the plan, plus the fallback
// record when the first encoder failed.
type encodeOptions struct {
	encoders.Plan
	Fallback *encoders.Fallback `json:"fallback,omitempty"`
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func sourceKind(m encoders.MediaInfo) string {
	switch {
	case m.HasVideo && m.Still:
		return "image"
	case m.HasVideo:
		return "video"
	}
	return "audio"
}

// localSource returns a local path for input, downloading a URL into the
// work folder first.
func (l *Local) localSource(ctx context.Context, input string, progress func(encoders.Progress)) (string, func(), error) {
	nop := func() {}
	if !strings.HasPrefix(input, "http://") && !strings.HasPrefix(input, "https://") {
		if strings.Contains(input, "://") {
			return "", nop, encoders.Errorf(encoders.ErrFetchFailed, "local mode reads local files and http(s) URLs; %q is neither", input)
		}
		st, err := os.Stat(input)
		if err != nil {
			return "", nop, encoders.Errorf(encoders.ErrFetchFailed, "input %s: %v", input, unwrapPathErr(err))
		}
		if !st.Mode().IsRegular() {
			return "", nop, encoders.Errorf(encoders.ErrFetchFailed, "input %s is not a regular file", input)
		}
		return input, nop, nil
	}
	dir, err := os.MkdirTemp(l.WorkDir, "ittybit-")
	if err != nil {
		return "", nop, encoders.Errorf(encoders.ErrInternal, "create work folder: %v", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	name := "source" + strings.ToLower(path.Ext(strings.SplitN(input, "?", 2)[0]))
	if len(name) > 16 {
		name = "source"
	}
	dst := filepath.Join(dir, name)
	f, err := os.Create(dst)
	if err != nil {
		return "", cleanup, encoders.Errorf(encoders.ErrInternal, "create download: %v", err)
	}
	_, err = l.Fetcher.Fetch(ctx, input, &countingWriter{w: f, report: progress})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = encoders.Errorf(encoders.ErrInternal, "write download: %v", cerr)
	}
	if err != nil {
		return "", cleanup, err
	}
	return dst, cleanup, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// countingWriter reports bytes written as progress (the fraction stays 0:
// the total is not known in advance).
type countingWriter struct {
	w      io.Writer
	n      int64
	report func(encoders.Progress)
	last   time.Time
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if time.Since(c.last) > 200*time.Millisecond {
		c.last = time.Now()
		c.report(encoders.Progress{})
	}
	return n, err
}

// newID returns prefix_ followed by 20 random base-32 characters.
func newID(prefix string) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return prefix + "_" + string(b[:])
}
