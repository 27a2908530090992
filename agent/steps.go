package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// managedScheme marks managed-storage URLs in step outputs; the API signs
// them for readers.
const managedScheme = "managed://"

// execute runs one step and reports its outcome.
func (a *Agent) execute(r *run) {
	as := r.a
	log := a.log.With(append(a.stepAttrs(as), "step", as.Step, "attempt", as.Attempt)...)
	log.Info("step started")
	start := time.Now()
	out, opts, err := a.runStep(r.ctx, r)
	// Continue: the task's next step may come back in the report's
	// answer, to run here, where its files are.
	rep := api.StepReport{TaskID: as.TaskID, Attempt: as.Attempt, Continue: true}
	switch {
	case err == nil:
		rep.Outcome = api.OutcomeCompleted
		rep.Output, _ = json.Marshal(out)
		if opts != nil {
			rep.Options, _ = json.Marshal(opts)
		}
		log.Info("step completed", "seconds", time.Since(start).Seconds())
	case r.ctx.Err() != nil:
		// Stopped: cancelled by the leader (nothing to report) or handed
		// back while draining.
		rep.Outcome = api.OutcomeReleased
		log.Info("step stopped")
	default:
		kind, msg := encoders.Summary(err)
		rep.Outcome, rep.Error, rep.Retryable = api.OutcomeFailed, &api.Error{Kind: string(kind), Message: msg}, retryable(kind)
		log.Warn("step failed", "err", err, "retryable", rep.Retryable)
	}
	a.cfg.Metrics.steps.WithLabelValues(stepKind(as.Step), result(rep.Outcome)).Inc()
	// Still held, and listed as reporting, until the report is answered:
	// the leader waits a bounded time for it, then runs the step elsewhere.
	a.mu.Lock()
	r.progress.Reporting, r.reportingAt = true, time.Now()
	a.mu.Unlock()
	next := a.report(r, rep, log)
	a.mu.Lock()
	if a.running[as.StepID] == r {
		delete(a.running, as.StepID)
	}
	a.mu.Unlock()
	r.cancel()
	r.stopReport()
	a.accept(next)
	if rep.Outcome == api.OutcomeCompleted && as.Step == api.StepUpload || rep.Outcome == api.OutcomeFailed && !rep.Retryable {
		os.RemoveAll(a.taskDir(as.TaskID)) // the task is done with this node
	}
}

func stepKind(k string) string {
	if encoders.Kind(k).Valid() {
		return "encode"
	}
	return k
}

func result(outcome string) string {
	switch outcome {
	case api.OutcomeCompleted:
		return "completed"
	case api.OutcomeFailed:
		return "failed"
	}
	return "released"
}

// report delivers an outcome, retrying through leader changes, until it
// is answered, refused (a stale attempt), or the leader stops the step. It
// returns the assignments the answer carries (the task's next step).
func (a *Agent) report(r *run, rep api.StepReport, log interface {
	Warn(string, ...any)
}) api.Assignments {
	as := r.a
	ctx, cancel := context.WithTimeout(r.reportCtx, 2*time.Minute)
	defer cancel()
	for {
		reply, err := a.client().ReportStep(ctx, as.StepID, rep)
		var ae *api.Error
		switch {
		case err == nil:
			return reply.Assignments
		case errors.As(err, &ae) && (ae.Kind == api.KindStaleAttempt || ae.Kind == api.KindNotFound):
			log.Warn("report refused: the step moved on", "kind", ae.Kind)
			return api.Assignments{}
		case ctx.Err() != nil:
			log.Warn("report not delivered", "err", err)
			return api.Assignments{}
		}
		a.failover(err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// retryable says whether another attempt may succeed where this failed.
func retryable(k encoders.ErrorKind) bool {
	switch k {
	case encoders.ErrInputBlocked, encoders.ErrInvalidMedia, encoders.ErrUnsupportedMedia, encoders.ErrInputTooLarge,
		encoders.ErrInvalidInput, encoders.ErrInvalidOption, encoders.ErrInvalidOutput:
		return false
	}
	return true
}

// runStep does the work of one step and returns its output object and,
// for the encode step, the options it resolved.
func (a *Agent) runStep(ctx context.Context, r *run) (any, any, error) {
	as := r.a
	if err := os.MkdirAll(a.taskDir(as.TaskID), 0o700); err != nil {
		return nil, nil, encoders.Errorf(encoders.ErrInternal, "create work folder: %v", err)
	}
	switch {
	case as.Step == api.StepProbe:
		out, err := a.probe(ctx, as)
		return out, nil, err
	case as.Step == api.StepIngest:
		out, err := a.ingest(ctx, as)
		return out, nil, err
	case as.Step == api.StepUpload:
		out, err := a.upload(ctx, as)
		return out, nil, err
	case encoders.Kind(as.Step).Valid():
		return a.encode(ctx, r)
	}
	return nil, nil, encoders.Errorf(encoders.ErrInternal, "unknown step kind %q", as.Step)
}

// spec is the task's request as encoders sees it.
func spec(t api.AssignedTask) encoders.Spec {
	s := encoders.Spec{Kind: t.Kind, Input: t.Input, Options: t.Options}
	if t.Output != nil {
		s.Output = *t.Output
	}
	return s
}

// stepOutput decodes the output of the task's step of a kind.
func stepOutput(t api.AssignedTask, kind string, v any) error {
	for _, s := range t.Steps {
		if s.Kind == kind {
			if len(s.Output) == 0 {
				return encoders.Errorf(encoders.ErrInternal, "the %s step left no output", kind)
			}
			if err := json.Unmarshal(s.Output, v); err != nil {
				return encoders.Errorf(encoders.ErrInternal, "read the %s step's output: %v", kind, err)
			}
			return nil
		}
	}
	return encoders.Errorf(encoders.ErrInternal, "no %s step", kind)
}

// sourcePath is where the fetched source lives on this node.
func (a *Agent) sourcePath(taskID string) string { return filepath.Join(a.taskDir(taskID), "source") }

// fetchSource brings the task's input from its origin.
func (a *Agent) fetchSource(ctx context.Context, t api.AssignedTask, dst string) error {
	tmp := dst + ".part"
	defer os.Remove(tmp)
	if strings.HasPrefix(t.Input, "s3://") {
		if a.cfg.S3 == nil {
			return encoders.Errorf(encoders.ErrFetchFailed, "this agent has no S3 access configured for %s", t.Input)
		}
		n, err := a.cfg.S3.Download(ctx, t.Input, tmp, a.cfg.MaxInputBytes)
		if err != nil {
			return err
		}
		a.cfg.Metrics.bytes.WithLabelValues("ingest").Add(float64(n))
	} else {
		f, err := os.Create(tmp)
		if err != nil {
			return encoders.Errorf(encoders.ErrInternal, "create download: %v", err)
		}
		n, err := a.cfg.Fetcher.Fetch(ctx, t.Input, f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = encoders.Errorf(encoders.ErrInternal, "write download: %v", cerr)
		}
		if err != nil {
			return err
		}
		a.cfg.Metrics.bytes.WithLabelValues("ingest").Add(float64(n))
	}
	return os.Rename(tmp, dst)
}

// probe fetches the source to this node and reads it; it refuses what the
// task cannot make (a video task from audio, a start past the end).
func (a *Agent) probe(ctx context.Context, as api.Assignment) (encoders.MediaInfo, error) {
	src := a.sourcePath(as.TaskID)
	if _, err := os.Stat(src); err != nil {
		if err := a.fetchSource(ctx, as.Task, src); err != nil {
			return encoders.MediaInfo{}, err
		}
	}
	info, err := a.cfg.Prober.Probe(ctx, src)
	if err != nil {
		return encoders.MediaInfo{}, err
	}
	if _, err := encoders.NewPlan(spec(as.Task), info, encoders.BackendSoftware); err != nil {
		return encoders.MediaInfo{}, err
	}
	return info, nil
}

// ingest keeps the source in managed storage, so that a retry or another
// node never goes back to the origin.
func (a *Agent) ingest(ctx context.Context, as api.Assignment) (encoders.File, error) {
	var info encoders.MediaInfo
	if err := stepOutput(as.Task, api.StepProbe, &info); err != nil {
		return encoders.File{}, err
	}
	src := a.sourcePath(as.TaskID)
	if _, err := os.Stat(src); err != nil {
		// Another node probed: fetch once more from the origin.
		if err := a.fetchSource(ctx, as.Task, src); err != nil {
			return encoders.File{}, err
		}
	}
	key := "tasks/" + as.TaskID + "/source"
	if err := a.store(ctx, key, src); err != nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrUploadFailed, "store the source: %v", err)
	}
	return encoders.File{
		Object: "file", Kind: sourceKind(info), URL: managedScheme + key, Format: info.Format,
		Codec: firstNonEmpty(info.Codecs.Video, info.Codecs.Audio), Width: info.Width, Height: info.Height,
		Duration: info.Duration, FPS: info.FPS, Filesize: info.Filesize, Bitrate: info.Bitrate,
	}, nil
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

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// resultName is the file name of a task's result.
func resultName(t api.AssignedTask) string {
	format := encoders.Defaults(t.Kind, t.Options, outputOf(t)).Format
	if t.Kind == encoders.KindAdaptive {
		return "master.m3u8"
	}
	return "output" + encoders.Extension(format)
}

func outputOf(t api.AssignedTask) string {
	if t.Output == nil {
		return ""
	}
	return *t.Output
}

// encodeDir is where an attempt's encode result lives on this node.
func (a *Agent) encodeDir(taskID string, attempt int) string {
	return filepath.Join(a.taskDir(taskID), fmt.Sprintf("encode-%d", attempt))
}

// stagingPrefix is where an attempt's encode result is kept in managed
// storage until the upload step publishes it.
func stagingPrefix(taskID string, attempt int) string {
	return fmt.Sprintf("tasks/%s/staging/%d", taskID, attempt)
}

// encode plans and runs the encode with the best encoder for the codec,
// then stages the result in managed storage.
func (a *Agent) encode(ctx context.Context, r *run) (any, any, error) {
	as := r.a
	var info encoders.MediaInfo
	if err := stepOutput(as.Task, api.StepProbe, &info); err != nil {
		return nil, nil, err
	}
	src := a.sourcePath(as.TaskID)
	if _, err := os.Stat(src); err != nil {
		if err := a.cfg.Managed.Get(ctx, "tasks/"+as.TaskID+"/source", src); err != nil {
			return nil, nil, encoders.Errorf(encoders.ErrFetchFailed, "read the ingested source: %v", err)
		}
	}
	dir := a.encodeDir(as.TaskID, as.Attempt)
	os.RemoveAll(dir)
	name := resultName(as.Task)
	out := filepath.Join(dir, name)
	meter := a.cfg.Metrics.newEncodeMeter(as.Task.Kind)
	req := encoders.Request{Spec: spec(as.Task), Source: info, Input: src, Output: out, Started: meter.attempt,
		LogArgs: append(a.stepAttrs(as), "node_id", a.cfg.Name)}
	res, err := a.cfg.Encoder.Encode(ctx, req, func(p encoders.Progress) {
		a.setProgress(as.StepID, p)
		meter.progress(p)
	})
	meter.finish(res, err)
	if err != nil {
		return nil, nil, err
	}
	prefix := stagingPrefix(as.TaskID, as.Attempt)
	if as.Task.Kind == encoders.KindAdaptive {
		err = a.cfg.Managed.PutDir(ctx, prefix, dir, name)
	} else {
		err = a.store(ctx, prefix+"/"+name, out)
	}
	if err != nil {
		return nil, nil, encoders.Errorf(encoders.ErrUploadFailed, "stage the result: %v", err)
	}
	file := relocate(res.File, dir, managedScheme+prefix+"/")
	opts := map[string]any{}
	if b, err := json.Marshal(res.Plan); err == nil {
		_ = json.Unmarshal(b, &opts)
	}
	delete(opts, "source")
	opts["encoder"], opts["plugin"] = res.Encoder, res.Plugin
	if res.Fallback != nil {
		opts["fallback"] = res.Fallback
	}
	return file, opts, nil
}

// relocate rewrites a result's local paths (under dir) as URLs under base.
func relocate(f encoders.File, dir, base string) encoders.File {
	rel := func(p string) string {
		r, err := filepath.Rel(dir, p)
		if err != nil || strings.HasPrefix(r, "..") {
			return base + filepath.Base(p)
		}
		return base + filepath.ToSlash(r)
	}
	f.URL = rel(f.URL)
	rs := make([]encoders.File, len(f.Renditions))
	for i, r := range f.Renditions {
		r.URL = rel(r.URL)
		rs[i] = r
	}
	if len(rs) > 0 {
		f.Renditions = rs
	}
	return f
}

// upload delivers the staged result: to the task's s3:// output, or
// published in managed storage. The entry point (the file, or the HLS
// master playlist) appears last, so no partial result is ever visible.
func (a *Agent) upload(ctx context.Context, as api.Assignment) (encoders.File, error) {
	var staged encoders.File
	if err := stepOutput(as.Task, string(as.Task.Kind), &staged); err != nil {
		return encoders.File{}, err
	}
	stagedPrefix := strings.TrimPrefix(staged.URL, managedScheme)
	stagedPrefix = stagedPrefix[:max(strings.LastIndex(stagedPrefix, "/"), 0)]
	name := resultName(as.Task)
	dest := outputOf(as.Task)
	if dest == "" {
		final := "tasks/" + as.TaskID
		if err := a.cfg.Managed.CopyDir(ctx, stagedPrefix, final, name); err != nil {
			return encoders.File{}, encoders.Errorf(encoders.ErrUploadFailed, "publish the result: %v", err)
		}
		a.cfg.Metrics.bytes.WithLabelValues("upload").Add(float64(deliveredBytes(staged)))
		a.dropStaging(ctx, as)
		return rebase(staged, managedScheme+stagedPrefix+"/", managedScheme+final+"/"), nil
	}
	if a.cfg.S3 == nil {
		return encoders.File{}, encoders.Errorf(encoders.ErrUploadFailed, "this agent has no S3 access configured for %s", dest)
	}
	// The staged copy on this node, or fetched from managed storage.
	local := ""
	var attempt int
	if _, err := fmt.Sscanf(path.Base(stagedPrefix), "%d", &attempt); err == nil {
		if dir := a.encodeDir(as.TaskID, attempt); exists(filepath.Join(dir, name)) {
			local = dir
		}
	}
	if local == "" {
		local = filepath.Join(a.taskDir(as.TaskID), "upload")
		os.RemoveAll(local)
		if err := a.cfg.Managed.GetDir(ctx, stagedPrefix, local); err != nil {
			return encoders.File{}, encoders.Errorf(encoders.ErrUploadFailed, "read the staged result: %v", err)
		}
	}
	destBase := dest
	var err error
	if as.Task.Kind == encoders.KindAdaptive {
		if !strings.HasSuffix(destBase, "/") {
			destBase = destBase[:strings.LastIndex(destBase, "/")+1]
		}
		err = a.cfg.S3.UploadDir(ctx, local, destBase, name)
	} else {
		err = a.cfg.S3.Upload(ctx, filepath.Join(local, name), dest)
		destBase = dest[:strings.LastIndex(dest, "/")+1]
	}
	if err != nil {
		return encoders.File{}, err
	}
	a.cfg.Metrics.bytes.WithLabelValues("upload").Add(float64(deliveredBytes(staged)))
	a.dropStaging(ctx, as)
	out := rebase(staged, managedScheme+stagedPrefix+"/", destBase)
	if as.Task.Kind != encoders.KindAdaptive {
		out.URL = dest
	}
	return out, nil
}

// deliveredBytes is the size of a result: the file, or an HLS master
// playlist and its renditions.
func deliveredBytes(f encoders.File) int64 {
	n := f.Filesize
	for _, r := range f.Renditions {
		n += r.Filesize
	}
	return n
}

// rebase moves a file object's URLs from one base to another.
func rebase(f encoders.File, from, to string) encoders.File {
	f.URL = to + strings.TrimPrefix(f.URL, from)
	rs := make([]encoders.File, len(f.Renditions))
	for i, r := range f.Renditions {
		r.URL = to + strings.TrimPrefix(r.URL, from)
		rs[i] = r
	}
	if len(rs) > 0 {
		f.Renditions = rs
	}
	return f
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dropStaging removes a task's staged encodes once the result is
// delivered; a failure only leaves garbage behind.
func (a *Agent) dropStaging(ctx context.Context, as api.Assignment) {
	if err := a.cfg.Managed.DeletePrefix(ctx, "tasks/"+as.TaskID+"/staging"); err != nil {
		a.log.Warn("remove staged results", append(a.stepAttrs(as), "err", err)...)
	}
}

// linker is managed storage that can take a file without copying it.
type linker interface {
	Link(ctx context.Context, key, localPath string) error
}

// store puts a local file into managed storage: linked when the store is
// a folder on the same filesystem (a large source is not copied), copied
// otherwise. The file is not written again afterwards.
func (a *Agent) store(ctx context.Context, key, localPath string) error {
	if l, ok := a.cfg.Managed.(linker); ok {
		if err := l.Link(ctx, key, localPath); err == nil {
			return nil
		}
	}
	return a.cfg.Managed.Put(ctx, key, localPath)
}

// stepAttrs are the log attributes of every line about a step; a.log
// adds node_id, this agent's name.
func (a *Agent) stepAttrs(as api.Assignment) []any {
	return []any{"task_id", as.TaskID, "step_id", as.StepID}
}
