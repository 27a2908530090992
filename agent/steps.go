package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/steps"
)

// execute runs one step and reports its outcome.
func (a *Agent) execute(r *run) {
	as := r.a
	log := a.log.With(append(a.stepAttrs(as), "step", as.Step, "attempt", as.Attempt)...)
	log.Info("step started")
	start := time.Now()
	out, err := a.runStep(r.ctx, r)
	// Continue: the task's next step may come back in the report's
	// answer, to run here, where its files are.
	rep := api.StepReport{TaskID: as.TaskID, Attempt: as.Attempt, Continue: true}
	switch {
	case err == nil:
		rep.Outcome = api.OutcomeCompleted
		rep.Output, _ = json.Marshal(out.Output)
		if out.Options != nil {
			rep.Options, _ = json.Marshal(out.Options)
		}
		log.Info("step completed", "seconds", time.Since(start).Seconds())
	case r.ctx.Err() != nil:
		// Stopped: cancelled by the leader (nothing to report) or handed
		// back while draining.
		rep.Outcome = api.OutcomeReleased
		log.Info("step stopped")
	default:
		kind, msg := ittybit.Summary(err)
		rep.Outcome, rep.Error, rep.Retryable = api.OutcomeFailed, &api.Error{Kind: kind, Message: msg}, retryable(kind)
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
	switch {
	case rep.Outcome == api.OutcomeCompleted && as.Step == api.StepUpload, rep.Outcome == api.OutcomeFailed && !rep.Retryable:
		os.RemoveAll(a.taskDir(as.TaskID)) // the task is done with this node
	case as.Part != nil && !a.holds(as.TaskID):
		// A part is kept in managed storage; this node's copies of the
		// source and the part go, unless more of the task runs here.
		os.RemoveAll(a.taskDir(as.TaskID))
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
		case errors.As(err, &ae) && (ae.Kind == ittybit.ErrStaleAttempt || ae.Kind == ittybit.ErrNotFound):
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
func retryable(k ittybit.ErrorKind) bool {
	switch k {
	case ittybit.ErrInputBlocked, ittybit.ErrInvalidMedia, ittybit.ErrUnsupportedMedia, ittybit.ErrInputTooLarge,
		ittybit.ErrInvalidInput, ittybit.ErrInvalidOption, ittybit.ErrInvalidOutput:
		return false
	}
	return true
}

// runStep does the work of one step.
func (a *Agent) runStep(ctx context.Context, r *run) (steps.Outcome, error) {
	as := r.a
	if err := os.MkdirAll(a.taskDir(as.TaskID), 0o700); err != nil {
		return steps.Outcome{}, ittybit.Errorf(ittybit.ErrInternal, "create work folder: %v", err)
	}
	a.mu.Lock()
	countFrom := a.countFrom
	a.mu.Unlock()
	return a.steps.Run(ctx, steps.Step{
		Task: as.Task, Kind: as.Step, Attempt: as.Attempt, Part: as.Part, CountFramesFrom: countFrom,
		Progress: func(p encoders.Progress) { a.setProgress(as.StepID, p) },
		LogArgs:  append(a.stepAttrs(as), "node_id", a.cfg.Name),
	})
}

// meteredEncoder is the agent's encoder, counted in its metrics: encoder
// sessions, media seconds and frames under the encoder actually running.
type meteredEncoder struct{ a *Agent }

func (m meteredEncoder) Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error) {
	meter := m.a.cfg.Metrics.newEncodeMeter(req.Spec.Kind)
	req.Started = meter.attempt
	res, err := m.a.cfg.Encoder.Encode(ctx, req, func(p encoders.Progress) {
		progress(p)
		meter.progress(p)
	})
	meter.finish(res, err)
	return res, err
}

// stepAttrs are the log attributes of every line about a step; a.log
// adds node_id, this agent's name.
func (a *Agent) stepAttrs(as api.Assignment) []any {
	return []any{"task_id", as.TaskID, "step_id", as.StepID}
}

// stitcher checks a split step's parts as they land and joins them with
// ffmpeg (a stream copy, no encoder: it runs in the agent, not in a
// plugin, so that no plugin vouches for its own output).
type stitcher struct{ prober Prober }

func (s stitcher) Check(ctx context.Context, plan encoders.Plan, part encoders.Part, path string) error {
	return ffmpeg.CheckPart(ctx, &ffmpeg.Runner{}, s.prober, plan, part, path)
}

func (s stitcher) Stitch(ctx context.Context, plan encoders.Plan, parts []encoders.Part, files []string, output string) (encoders.File, error) {
	return ffmpeg.Stitch(ctx, &ffmpeg.Runner{}, s.prober, plan, parts, files, output)
}

// holds reports whether this agent runs a step or part of the task.
func (a *Agent) holds(taskID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.running {
		if r.a.TaskID == taskID {
			return true
		}
	}
	return false
}
