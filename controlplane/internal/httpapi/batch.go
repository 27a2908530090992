package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/batch"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/wire"
)

// Batched forwarding. A follower reads and checks each POST /tasks itself
// (a bad request is answered there and never reaches the leader), then
// sends the seeds of many concurrent creates to the leader in one request
// (POST /internal/tasks/batch, in package wire's binary form, with its
// node token). The leader stamps their ids and time, commits them with
// its other creates, and answers each one's outcome; the follower builds
// each client's task from its seed, as the leader's log does, and answers
// it. A batch goes out at once when none is on its way, so a lone create
// waits for nothing; under load each carries what queued meanwhile (at
// most maxForwardBatch): one batch at a time, so that each carries all of
// it (at 64 clients over three nodes, 13.5 creates a batch against 7.6
// at two at a time, and fewer requests for the leader to read; the
// store's maxCreatesInFlight says what the two together measured). A
// leader that does not know the route (an older release, in a rolling
// upgrade) or refuses the token gets requests whole again, as before, for
// a while.
const (
	maxForwardBatch    = 256
	maxForwardInFlight = 1
	// maxBatchedBody: a larger request is forwarded whole, so that a
	// batch stays within maxBatchBytes.
	maxBatchedBody = 64 << 10
	maxBatchBytes  = maxForwardBatch*maxBatchedBody + 1<<20
	// batchRetry is how long a follower forwards whole after the leader
	// refused a batch.
	batchRetry = 30 * time.Second
	// batchType is the media type of a batch and of its answer.
	batchType = "application/vnd.ittybit.batch"
)

// forwardBatches sends a follower's creates to the leader in batches.
type forwardBatches struct {
	a       *API
	batches *batch.Batcher[state.SeedRequest, wire.Result]
	// off is when batches were last refused (unix ms): requests go whole
	// until batchRetry after it.
	off atomic.Int64
}

func newForwardBatches(a *API) *forwardBatches {
	f := &forwardBatches{a: a}
	f.batches = batch.New(maxForwardBatch, maxForwardInFlight, errElsewhere, f.send)
	return f
}

// createTaskAway serves POST /tasks on a follower: checked here, sent on
// in a batch.
func (a *API) createTaskAway(w http.ResponseWriter, r *http.Request) error {
	f := a.batches
	if f == nil || time.Since(time.UnixMilli(f.off.Load())) < batchRetry {
		return errForward
	}
	body, _ := bodyOf(r)
	if len(body) > maxBatchedBody {
		return errForward
	}
	req, err := a.readCreate(r)
	if err != nil {
		return err
	}
	res, err := f.batches.Submit(r.Context(), []state.SeedRequest{req})
	if err != nil {
		return err
	}
	out := res[0]
	switch out.Status {
	case wire.Conflict:
		return errIdempotencyConflict()
	case wire.Replayed:
		var task api.Task
		if err := json.Unmarshal(out.Task, &task); err != nil {
			return fmt.Errorf("the leader's answer: %w", err)
		}
		a.view(r, &task)
		w.Header().Set("Location", "/tasks/"+task.ID)
		writeJSON(w, http.StatusCreated, &task)
		return nil
	}
	// A new task: the one its seed describes with the leader's stamp, as
	// every node's log builds it, answered from the seed.
	req.Seed.ID, req.Seed.At, req.Seed.StepIDs = out.ID, out.At, out.StepIDs
	w.Header().Set("Location", "/tasks/"+req.Seed.ID)
	writeSeedTask(w, http.StatusCreated, &req.Seed)
	return nil
}

// send forwards one batch to the leader.
func (f *forwardBatches) send(reqs []state.SeedRequest) ([]wire.Result, error) {
	a := f.a
	_, addr, ok := a.cfg.Store.Leader()
	if !ok || addr == "" || a.cfg.Store.IsLeader() {
		return nil, errElsewhere
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/internal/tasks/batch", bytes.NewReader(wire.AppendBatch(nil, 0, reqs)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.NodeToken)
	req.Header.Set("Content-Type", batchType)
	req.Header.Set(headerForwardedBy, a.cfg.Store.NodeID())
	resp, err := a.proxy.client.Do(req)
	if err != nil {
		a.log.Debug("batch to the leader failed; retrying", "leader", addr, "err", err)
		return nil, errElsewhere
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, errElsewhere
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized, http.StatusForbidden:
		f.refused(addr, fmt.Sprintf("answered %d", resp.StatusCode))
		return nil, errForward
	default:
		return nil, errElsewhere // 503: not the leader (any more), or no quorum
	}
	results, err := wire.ReadResults(data)
	if err == nil && len(results) != len(reqs) {
		err = fmt.Errorf("%d results for %d requests", len(results), len(reqs))
	}
	if err != nil {
		// The tasks may be committed: forwarded whole, with the same
		// request keys, they are answered as replays.
		f.refused(addr, err.Error())
		return nil, errForward
	}
	return results, nil
}

// refused turns batches off for batchRetry.
func (f *forwardBatches) refused(addr, why string) {
	f.off.Store(time.Now().UnixMilli())
	f.a.log.Warn("the leader takes no batch of creates; forwarding them one by one for a while", "leader", addr, "why", why, "retry_in", batchRetry)
}

// createBatch serves POST /internal/tasks/batch on the leader: a
// follower's creates, checked there, stamped and committed here.
func (a *API) createBatch(w http.ResponseWriter, r *http.Request) error {
	if !a.cfg.Store.LeaderReady() {
		return ittybit.Errorf(ittybit.ErrUnavailable, "this server is not the leader; retry")
	}
	body, err := readBody(w, r, maxBatchBytes)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return ittybit.Errorf(ittybit.ErrPayloadTooLarge, "the batch is over the limit of %d bytes", maxBatchBytes)
		}
		return a.bodyReadError(err)
	}
	_, reqs, err := wire.ReadBatch(body)
	if err != nil {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, "the batch does not decode: %v", err)
	}
	a.stampBatch(reqs)
	res, err := a.cfg.Store.CreateTasks(r.Context(), reqs)
	if errors.Is(elsewhere(err), errElsewhere) {
		return ittybit.Errorf(ittybit.ErrUnavailable, "this server is no longer the leader; retry")
	}
	if err != nil {
		return err
	}
	out := make([]wire.Result, len(res))
	for i, c := range res {
		switch {
		case c.Conflict:
			out[i].Status = wire.Conflict
		case c.Replayed:
			b, err := json.Marshal(a.presentTask(c.Task))
			if err != nil {
				return err
			}
			out[i] = wire.Result{Status: wire.Replayed, Task: b}
		default:
			sd := &reqs[i].Seed
			a.metrics.taskCreated(sd.Kind)
			out[i] = wire.Result{ID: sd.ID, At: sd.At, StepIDs: sd.StepIDs}
		}
	}
	w.Header().Set("Content-Type", batchType)
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(wire.AppendResults(nil, out))
	return err
}
