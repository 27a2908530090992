package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/scheduler"
)

// Scheduler is what the API needs of the leader's dispatcher.
type Scheduler interface {
	Register(ctx context.Context, reg api.NodeRegistration) (api.NodeRegistered, error)
	Heartbeat(ctx context.Context, name string, hb api.Heartbeat) (api.HeartbeatReply, error)
	Assignments(ctx context.Context, name string, wait time.Duration, rcv api.Received) (api.Assignments, error)
	Report(ctx context.Context, stepID string, rep api.StepReport) (api.ReportReply, error)
	Drain(ctx context.Context, name string) error
	Progress(stepID string) (float64, bool)
	Nodes() []api.NodeInfo
	Fleet() api.Fleet
}

// maxLongPoll caps how long an assignments request may wait; it stays
// below the forward timeout so a forwarded poll always gets its answer.
const maxLongPoll = 10 * time.Second

func (a *API) schedErr(err error) error {
	switch {
	case errors.Is(err, scheduler.ErrNotActive):
		return errElsewhere
	case errors.Is(err, scheduler.ErrUnknownNode):
		return ittybit.Errorf(ittybit.ErrUnknownNode, "this node is not registered with the leader; register again")
	case errors.Is(err, scheduler.ErrStale):
		return ittybit.Errorf(ittybit.ErrStaleAttempt, "the step is not held by this attempt any more (it was reassigned, cancelled or already reported); drop the result")
	case errors.Is(err, scheduler.ErrNotFound):
		return ittybit.Errorf(ittybit.ErrNotFound, "no such step")
	}
	return elsewhere(err)
}

func decodeBody(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, "the body is not the expected JSON: %v", err)
	}
	return nil
}

func (a *API) registerNode(w http.ResponseWriter, r *http.Request) error {
	var reg api.NodeRegistration
	if err := decodeBody(r, &reg); err != nil {
		return err
	}
	reg.Name = strings.TrimSpace(reg.Name)
	if reg.Name == "" || strings.ContainsAny(reg.Name, "/ \t\n") {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, "a node needs a name without spaces or slashes")
	}
	out, err := a.cfg.Scheduler.Register(r.Context(), reg)
	if err != nil {
		return a.schedErr(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) heartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb api.Heartbeat
	if err := decodeBody(r, &hb); err != nil {
		return err
	}
	out, err := a.cfg.Scheduler.Heartbeat(r.Context(), r.PathValue("name"), hb)
	if err != nil {
		return a.schedErr(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) assignments(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	wait := time.Duration(0)
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return ittybit.Errorf(ittybit.ErrInvalidJSON, "wait must be a duration such as 10s")
		}
		wait = min(d, maxLongPoll)
	}
	rcv := api.Received{Epoch: q.Get("epoch")}
	if s := q.Get("seq"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return ittybit.Errorf(ittybit.ErrInvalidJSON, "seq must be the highest delivery sequence number received, a whole number")
		}
		rcv.Seq = n
	}
	out, err := a.cfg.Scheduler.Assignments(r.Context(), r.PathValue("name"), wait, rcv)
	if err != nil {
		return a.schedErr(err)
	}
	// Agents get the stored task as it is: managed:// URLs, not signed ones.
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) reportStep(w http.ResponseWriter, r *http.Request) error {
	var rep api.StepReport
	if err := decodeBody(r, &rep); err != nil {
		return err
	}
	out, err := a.cfg.Scheduler.Report(r.Context(), r.PathValue("id"), rep)
	if err != nil {
		return a.schedErr(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) drainNode(w http.ResponseWriter, r *http.Request) error {
	if err := a.cfg.Scheduler.Drain(r.Context(), r.PathValue("name")); err != nil {
		return a.schedErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "draining"})
	return nil
}

func (a *API) listNodes(w http.ResponseWriter, r *http.Request) error {
	nodes := a.cfg.Scheduler.Nodes()
	if nodes == nil {
		nodes = []api.NodeInfo{}
	}
	writeJSON(w, http.StatusOK, api.List[api.NodeInfo]{Object: "list", Data: nodes})
	return nil
}
