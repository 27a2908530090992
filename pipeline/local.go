// Package pipeline runs a task's steps (probe → ingest → encode → upload) on
// this machine, for the CLI's local mode. Each step is done by package
// steps, as on an agent: the same options, plan, outputs and errors as a
// task in the cluster, reported as the same task object. Only where the
// files live differs: here, on this machine's disk.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/steps"
)

// Fetcher downloads an http(s) input; *storage.Fetcher is one.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string, w io.Writer) (int64, error)
}

// Local runs tasks on this machine.
type Local struct {
	Fetcher Fetcher
	Prober  steps.Prober
	Encoder steps.Encoder
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
	files := &localFiles{l: l, output: output}
	defer files.cleanup()
	r := &run{l: l, task: l.newTask(spec), runner: &steps.Runner{Prober: l.Prober, Encoder: l.Encoder, Files: files, Trace: l.Trace}}
	err := r.steps(ctx, spec, progress)
	r.finish(err)
	return r.task, err
}

type run struct {
	l      *Local
	task   *api.Task
	runner *steps.Runner
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

// steps runs the task's steps in order, each as an agent would run it.
func (r *run) steps(ctx context.Context, spec encoders.Spec, progress Progress) error {
	for i := range r.task.Steps {
		s := &r.task.Steps[i]
		r.begin(s)
		assigned := r.task.Assigned()
		if spec.Output != "" {
			// The output's name tells the plan its format.
			assigned.Output = &spec.Output
		}
		out, err := r.runner.Run(ctx, steps.Step{
			Task: assigned, Kind: s.Kind, Attempt: s.Attempt,
			Progress: func(p encoders.Progress) {
				s.Progress = &p.Fraction
				progress(s.Kind, p)
			},
		})
		r.end(s, out, err)
		if err != nil {
			return err
		}
		if s.Kind == api.StepUpload {
			url := out.Output.(encoders.File).URL
			r.task.Output = &url
		}
	}
	return nil
}

// begin marks a step processing.
func (r *run) begin(s *api.Step) {
	now := r.l.now()
	s.Status, s.StartedAt, s.UpdatedAt, s.Attempt = api.StepProcessing, &now, now, 1
	zero := 0.0
	s.Progress = &zero
	if r.task.StartedAt == nil {
		r.task.StartedAt = &now
		r.task.Status = api.TaskProcessing
	}
}

// end marks a step completed with its outcome, or failed.
func (r *run) end(s *api.Step, out steps.Outcome, err error) {
	now := r.l.now()
	s.FinishedAt, s.UpdatedAt = &now, now
	if err != nil {
		s.Status = api.StepFailed
		s.Error = api.FromError(err)
		return
	}
	one := 1.0
	s.Status, s.Progress = api.StepCompleted, &one
	if out.Output != nil {
		s.Output, _ = json.Marshal(out.Output)
	}
	if out.Options != nil {
		s.Options, _ = json.Marshal(out.Options)
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
	if k := ittybit.KindOf(err); k == ittybit.ErrCancelled {
		r.task.Status = api.TaskCancelled
	}
}

// localFiles keeps a task's files on this machine: a local input is read
// where it is, a URL is downloaded once into a work folder, and the
// encoder writes the result where the user asked.
type localFiles struct {
	l      *Local
	output string
	// src is the source on disk once known; dir the work folder, if any.
	src, dir string
}

func (f *localFiles) cleanup() {
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

func (f *localFiles) Source(ctx context.Context, t api.AssignedTask, progress func(encoders.Progress)) (string, error) {
	if f.src != "" {
		return f.src, nil
	}
	if progress == nil {
		progress = func(encoders.Progress) {}
	}
	src, err := f.localSource(ctx, t.Input, progress)
	if err != nil {
		return "", err
	}
	f.src = src
	return src, nil
}

// Ingest: locally, the source file is the stored source.
func (f *localFiles) Ingest(_ context.Context, _ api.AssignedTask, src string) (string, error) {
	return fileURL(src), nil
}

func (f *localFiles) Ingested(ctx context.Context, t api.AssignedTask) (string, error) {
	return f.Source(ctx, t, nil)
}

func (f *localFiles) EncodeTo(api.AssignedTask, int) (string, error) { return f.output, nil }

// Stage: the encoder wrote the result where it belongs.
func (f *localFiles) Stage(_ context.Context, _ api.AssignedTask, _ int, res encoders.File) (encoders.File, error) {
	return res.MapURLs(fileURL), nil
}

func (f *localFiles) Deliver(_ context.Context, _ api.AssignedTask, staged encoders.File) (encoders.File, error) {
	return staged, nil
}

// The local mode runs every step whole: it never splits one.
var errNoParts = ittybit.Errorf(ittybit.ErrInternal, "the local mode runs every step whole")

func (f *localFiles) PartTo(api.AssignedTask, api.Part, int) (string, error) { return "", errNoParts }

func (f *localFiles) KeepPart(context.Context, api.AssignedTask, api.Part, int, string) error {
	return errNoParts
}

func (f *localFiles) GetPart(context.Context, api.AssignedTask, api.Part, string) error {
	return errNoParts
}

// fileURL is the file:// URL of a local path.
func fileURL(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return "file://" + filepath.ToSlash(p)
}

// localSource returns a local path for input, downloading a URL into the
// work folder first.
func (f *localFiles) localSource(ctx context.Context, input string, progress func(encoders.Progress)) (string, error) {
	if !strings.HasPrefix(input, "http://") && !strings.HasPrefix(input, "https://") {
		if strings.Contains(input, "://") {
			return "", ittybit.Errorf(ittybit.ErrFetchFailed, "local mode reads local files and http(s) URLs; %q is neither", input)
		}
		st, err := os.Stat(input)
		if err != nil {
			return "", ittybit.Errorf(ittybit.ErrFetchFailed, "input %s: %v", input, unwrapPathErr(err))
		}
		if !st.Mode().IsRegular() {
			return "", ittybit.Errorf(ittybit.ErrFetchFailed, "input %s is not a regular file", input)
		}
		return input, nil
	}
	dir, err := os.MkdirTemp(f.l.WorkDir, "ittybit-")
	if err != nil {
		return "", ittybit.Errorf(ittybit.ErrInternal, "create work folder: %v", err)
	}
	f.dir = dir
	dst := filepath.Join(dir, steps.SourceName(input))
	w, err := os.Create(dst)
	if err != nil {
		return "", ittybit.Errorf(ittybit.ErrInternal, "create download: %v", err)
	}
	_, err = f.l.Fetcher.Fetch(ctx, input, &countingWriter{w: w, report: progress})
	if cerr := w.Close(); err == nil && cerr != nil {
		err = ittybit.Errorf(ittybit.ErrInternal, "write download: %v", cerr)
	}
	if err != nil {
		return "", err
	}
	return dst, nil
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
