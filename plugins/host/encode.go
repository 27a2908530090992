package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

// Encode plans and runs req on the best plugin for its codec: hardware
// with a free session first, software otherwise. When that attempt fails,
// it is retried once with the built-in software plugin (started again if it
// crashed), and the result records the fallback. progress (which may be
// nil) restarts from 0 for a retry.
//
// The result is filled as far as the encode got, also on error. Errors are
// *ittybit.Error values: the plan's (unsupported_media, …), the last
// attempt's, cancelled when ctx ended or the host closed.
func (h *Host) Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error) {
	ctx, cancel := h.join(ctx)
	defer cancel()
	log := h.log.With(req.LogArgs...)
	codec := codecOf(req.Spec)
	if req.Part != nil && req.Part.Kind == encoders.PartAudio {
		codec = "" // the sound track: the software plugin
	}
	var res encoders.Result
	var first *encoders.Fallback
	for _, c := range candidates(h.plugins, codec) {
		plan, err := encoders.NewPlan(req.Spec, req.Source, c.cap.Backend)
		if err != nil {
			if ittybit.KindOf(err) == ittybit.ErrEncodeFailed {
				continue // this backend has no encoder for it
			}
			return res, err // the source cannot make this output anywhere
		}
		release, ok := h.sessions.acquire(c.sessionKey(), sessionsNeeded(plan), c.cap.MaxSessions)
		if !ok {
			log.Debug("no free session; trying the next encoder", "plugin", c.cap.Plugin, "device", c.cap.Device)
			continue
		}
		res, err = h.attempt(ctx, log, c, plan, req, false, progress)
		release()
		if err == nil || ittybit.KindOf(err) == ittybit.ErrCancelled {
			return res, plain(err)
		}
		if c.in.builtin && c.cap.Backend == encoders.BackendSoftware && !errors.Is(err, errStopped) {
			return res, plain(err) // a retry would run the same encode again
		}
		first = &encoders.Fallback{From: plan.Encoder, Reason: message(err)}
		log.Warn("encode failed; retrying in software", "plugin", c.cap.Plugin, "encoder", plan.Encoder, "err", err)
		break
	}
	if first == nil {
		return res, ittybit.Errorf(ittybit.ErrEncodeFailed, "no encoder for %s on this machine: %s", codecName(codec), unavailableReasons(h.plugins, codec))
	}
	retry, ok := softwareRetry(h.plugins, codec)
	if !ok {
		return res, ittybit.Errorf(ittybit.ErrEncodeFailed, "%s, and software cannot encode %s here", first.Reason, codecName(codec))
	}
	plan, err := encoders.NewPlan(req.Spec, req.Source, encoders.BackendSoftware)
	if err != nil {
		return res, err
	}
	res, err = h.attempt(ctx, log, retry, plan, req, true, progress)
	res.Fallback = first
	return res, plain(err)
}

// errStopped marks an attempt whose plugin went away.
var errStopped = errors.New("plugin stopped")

// attempt runs plan on one candidate. A plugin that went away is started
// afresh for the next attempt; its error says it stopped.
func (h *Host) attempt(ctx context.Context, log *slog.Logger, c candidate, plan encoders.Plan, req encoders.Request, retry bool, progress func(encoders.Progress)) (encoders.Result, error) {
	if plan.Backend == encoders.BackendSoftware {
		plan.Threads = h.cfg.EncodeThreads
	}
	plan.Part = req.Part
	res := encoders.Result{Plan: plan, Encoder: plan.Encoder, Plugin: c.cap.Plugin}
	enc, gen, err := c.in.running(ctx, h)
	if errors.Is(err, ErrClosed) || ctx.Err() != nil {
		return res, ittybit.Errorf(ittybit.ErrCancelled, "encode cancelled: %v", context.Cause(ctx))
	}
	if err != nil {
		return res, &stoppedError{ittybit.Errorf(ittybit.ErrEncodeFailed, "plugin %s is not running: %v", c.cap.Plugin, err)}
	}
	if req.Started != nil {
		ended := req.Started(encoders.Attempt{Plan: plan, Plugin: c.cap.Plugin, Device: c.cap.Device, Sessions: sessionsNeeded(plan), Retry: retry})
		if ended != nil {
			defer ended()
		}
	}
	log.Debug("encode", "plugin", c.cap.Plugin, "encoder", plan.Encoder, "device", c.cap.Device)
	f, err := enc.Encode(ctx, encoderplugin.Request{
		Job:    encoders.Job{Plan: plan, Input: req.Input, Output: req.Output},
		Device: c.cap.Device, Trace: req.Trace,
	}, progress)
	switch {
	case err == nil:
		if err := wrote(f, plan); err != nil {
			return res, ittybit.Errorf(ittybit.ErrEncodeFailed, "plugin %s reported a result it did not write: %v", c.cap.Plugin, err)
		}
		res.File = f
		return res, nil
	case ctx.Err() != nil:
		return res, ittybit.Errorf(ittybit.ErrCancelled, "encode cancelled")
	case errors.Is(err, encoderplugin.ErrStopped):
		c.in.stopped(gen)
		return res, &stoppedError{ittybit.Errorf(ittybit.ErrEncodeFailed, "plugin %s stopped during the encode: %v", c.cap.Plugin, err)}
	}
	return res, err
}

// wrote checks that a result a plugin reports is on disk as it says:
// whatever a plugin answers, a file that is missing, empty or of another
// size never passes for an encode.
func wrote(f encoders.File, plan encoders.Plan) error {
	st, err := os.Stat(f.URL)
	switch {
	case err != nil:
		return errors.New("no file at the result's path")
	case st.Size() == 0:
		return errors.New("the result is an empty file")
	case plan.Kind != encoders.KindAdaptive && f.Filesize > 0 && st.Size() != f.Filesize:
		// (An HLS result's size is its renditions', not the playlist's.)
		return fmt.Errorf("the result holds %d bytes, not the %d reported", st.Size(), f.Filesize)
	}
	return nil
}

// stoppedError is the *ittybit.Error of an attempt whose plugin went
// away; it matches errStopped.
type stoppedError struct{ err *ittybit.Error }

func (e *stoppedError) Error() string        { return e.err.Error() }
func (e *stoppedError) Unwrap() error        { return e.err }
func (e *stoppedError) Is(target error) bool { return target == errStopped }

// plain returns the *ittybit.Error in err, which is what Encode returns.
func plain(err error) error {
	var e *ittybit.Error
	if errors.As(err, &e) {
		return e
	}
	if err != nil {
		return ittybit.Errorf(ittybit.ErrInternal, "%v", err)
	}
	return nil
}

// message is an error's text without its kind.
func message(err error) string {
	var e *ittybit.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

func codecName(codec string) string {
	if codec == "" {
		return "audio and images"
	}
	return codec
}
