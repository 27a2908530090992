package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/archive"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// maxIdempotencyKey bounds the length of an Idempotency-Key.
const maxIdempotencyKey = 255

func (a *API) createTask(w http.ResponseWriter, r *http.Request) error {
	req, err := a.readCreate(r)
	if err != nil {
		return err
	}
	a.stamp(&req.Seed)
	res, err := a.cfg.Store.CreateTasks(r.Context(), []state.SeedRequest{req})
	if err != nil {
		return elsewhere(err)
	}
	out := res[0]
	switch {
	case out.Conflict:
		return errIdempotencyConflict()
	case out.Replayed:
		out.Task = a.presentTask(out.Task)
		a.view(r, out.Task)
		w.Header().Set("Location", "/tasks/"+out.Task.ID)
		writeJSON(w, http.StatusCreated, out.Task)
		return nil
	}
	// A new task: the one its seed describes, as every node's log builds
	// it, answered from the seed.
	a.metrics.taskCreated(req.Seed.Kind)
	w.Header().Set("Location", "/tasks/"+req.Seed.ID)
	writeSeedTask(w, http.StatusCreated, &req.Seed)
	return nil
}

// presentTask returns a replayed request's task as it is now (a replay shows
// the task's present state), or as the replay found it when it is gone.
func (a *API) presentTask(t *api.Task) *api.Task {
	if cur, err := a.cfg.Store.State().Task(t.ID); err == nil {
		return cur
	}
	return t
}

func errIdempotencyConflict() error {
	return ittybit.Errorf(ittybit.ErrIdempotencyConflict, "this Idempotency-Key was used with a different request in the last 24 hours; use a new key for a new task")
}

// readCreate reads and checks the body of POST /tasks: the task it asks
// for, as a seed still to be stamped, with the key of its request (the
// Idempotency-Key, or the id the first server gave the request).
func (a *API) readCreate(r *http.Request) (state.SeedRequest, error) {
	body, _ := bodyOf(r) // bounded and read by leaderOr
	req, opts, err := decodeCreateOptions(body)
	if err != nil {
		return state.SeedRequest{}, err
	}
	spec := encoders.Spec{Kind: req.Kind, Input: req.Input, Output: req.Output, Options: req.Options}
	if err := encoders.Validate(spec, a.policy); err != nil {
		return state.SeedRequest{}, err
	}
	if err := a.needConnections(r, req.Input, req.Output); err != nil {
		return state.SeedRequest{}, err
	}
	scopes := requestScopes(keyID(r.Context()))
	scope, key := scopes.req, r.Header.Get(headerRequestID)
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		if len(k) > maxIdempotencyKey {
			return state.SeedRequest{}, ittybit.Errorf(ittybit.ErrInvalidJSON, "Idempotency-Key is longer than %d characters", maxIdempotencyKey)
		}
		scope, key = scopes.idem, k
	}
	sd := state.Seed{Kind: req.Kind, Input: req.Input, Output: req.Output, Metadata: req.Metadata, Project: who(r.Context()).project, Priority: req.Priority}
	if sd.Priority == "" {
		sd.Priority = who(r.Context()).priority
	}
	// opts: json.Marshal's bytes (nil as json.Marshal left them when they
	// do not encode; validated options always do).
	if string(opts) != "{}" {
		sd.Options = opts
	}
	return state.SeedRequest{Seed: sd, Scope: scope, Key: key, BodyHash: bodyHash(req, opts)}, nil
}

// keyScopes are the scopes of an API key's request keys: "req:<key id>"
// for the ids servers give requests, "idem:<key id>" for Idempotency-Keys.
type keyScopes struct{ req, idem string }

// scopeCache holds each API key's scopes, made once: a new task's request
// record keeps its scope for an hour or a day, one string per key rather
// than one per task.
var scopeCache = struct {
	sync.RWMutex
	m map[string]*keyScopes
}{m: map[string]*keyScopes{}}

// requestScopes returns the scopes of the API key with id keyID.
func requestScopes(keyID string) *keyScopes {
	scopeCache.RLock()
	s := scopeCache.m[keyID]
	scopeCache.RUnlock()
	if s != nil {
		return s
	}
	scopeCache.Lock()
	defer scopeCache.Unlock()
	if s = scopeCache.m[keyID]; s == nil {
		s = &keyScopes{req: "req:" + keyID, idem: "idem:" + keyID}
		scopeCache.m[strings.Clone(keyID)] = s
	}
	return s
}

// stamp gives a new task its ids and time (the leader's clock).
func (a *API) stamp(sd *state.Seed) {
	sd.At = a.cfg.Now().UnixMilli()
	all := ids.make(sd.At, make([]string, 0, len(taskIDPrefixes)), taskIDPrefixes[:]...)
	sd.ID, sd.StepIDs = all[0], all[1:]
}

// stampBatch stamps a follower's batch of new tasks at once: one time for
// them all, and all their ids made in one go (one string, one slice).
func (a *API) stampBatch(reqs []state.SeedRequest) {
	if len(reqs) == 0 {
		return
	}
	at := a.cfg.Now().UnixMilli()
	const each = len(taskIDPrefixes)
	prefixes := make([]string, 0, len(reqs)*each)
	for range reqs {
		prefixes = append(prefixes, taskIDPrefixes[:]...)
	}
	all := ids.make(at, make([]string, 0, len(prefixes)), prefixes...)
	for i := range reqs {
		sd, k := &reqs[i].Seed, i*each
		// Each task's step ids end where the next task's begin.
		sd.At, sd.ID, sd.StepIDs = at, all[k], all[k+1:k+each:k+each]
	}
}

// taskIDPrefixes are the prefixes of a task's ids: its own, then one for
// each of its steps (api.StepKinds).
var taskIDPrefixes = [...]string{"task_", "step_", "step_", "step_", "step_"}

func (a *API) getTask(w http.ResponseWriter, r *http.Request) error {
	if err := a.current(); err != nil {
		return err
	}
	t, err := a.cfg.Store.State().Task(r.PathValue("id"))
	if errors.Is(err, state.ErrNotFound) && a.cfg.Archive != nil {
		t, err = a.archivedTask(r.Context(), r.PathValue("id"))
	}
	if err == nil && !who(r.Context()).sees(t.Project) {
		err = state.ErrNotFound // another project's: as if absent
	}
	if err != nil {
		return notFoundTask(r.PathValue("id"), err)
	}
	a.view(r, t)
	writeJSON(w, http.StatusOK, t)
	return nil
}

// archivedTask reads a retired task from the archive.
func (a *API) archivedTask(ctx context.Context, id string) (*api.Task, error) {
	data, err := a.cfg.Archive.Task(ctx, id)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, state.ErrNotFound
	}
	if err != nil {
		return nil, ittybit.Errorf(ittybit.ErrUnavailable, "task %s may be in the archive, which cannot be read now: %v", id, err)
	}
	return decodeArchived(data)
}

// decodeArchived reads a task as the archive keeps it.
func decodeArchived(data []byte) (*api.Task, error) {
	t := &api.Task{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("archived task: %w", err)
	}
	t.Archived = true
	return t, nil
}

func notFoundTask(id string, err error) error {
	if errors.Is(err, state.ErrNotFound) {
		return ittybit.Errorf(ittybit.ErrNotFound, "no task %q", id)
	}
	return err
}

func (a *API) listTasks(w http.ResponseWriter, r *http.Request) error {
	q, archived, err := listQuery(r)
	if err != nil {
		return err
	}
	if err := a.current(); err != nil {
		return err
	}
	q.Project = who(r.Context()).project
	if archived {
		return a.listArchived(w, r, q)
	}
	page, more, err := a.cfg.Store.State().ListTasks(q)
	if errors.Is(err, state.ErrNotFound) {
		return ittybit.Errorf(ittybit.ErrInvalidOption, "the cursor names no task; after and before take the id of a task in the list")
	}
	if err != nil {
		return err
	}
	for _, t := range page {
		a.view(r, t)
	}
	out := api.TaskList{List: api.List[*api.Task]{Object: "list", Data: page, HasMore: more}}
	if out.Data == nil {
		out.Data = []*api.Task{}
	}
	if a.cfg.Archive != nil {
		out.Archive = "/tasks?archived=true"
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listArchived answers GET /tasks?archived=true: a page of the archive,
// walked by day.
func (a *API) listArchived(w http.ResponseWriter, r *http.Request, q state.ListQuery) error {
	out := api.TaskList{List: api.List[*api.Task]{Object: "list", Data: []*api.Task{}}}
	if a.cfg.Archive == nil {
		writeJSON(w, http.StatusOK, out) // tasks never retire here
		return nil
	}
	page, more, err := a.cfg.Archive.List(r.Context(), archive.Query{
		Limit: q.Limit, Asc: q.Order == state.Asc, After: q.After, Before: q.Before,
		Kind: string(q.Kind), Status: string(q.Status), Project: q.Project,
	})
	if err != nil {
		return ittybit.Errorf(ittybit.ErrUnavailable, "the archive cannot be read now: %v", err)
	}
	for _, data := range page {
		t, err := decodeArchived(data)
		if err != nil {
			return err
		}
		a.view(r, t)
		out.Data = append(out.Data, t)
	}
	out.HasMore = more
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listQuery reads and checks the query of GET /tasks, and whether it asks
// for the archive.
func listQuery(r *http.Request) (state.ListQuery, bool, error) {
	v := r.URL.Query()
	q := state.ListQuery{Limit: 20, Order: state.Desc}
	var problems []string
	for name := range v {
		switch name {
		case "limit", "after", "before", "order", "status", "kind", "archived":
		default:
			problems = append(problems, fmt.Sprintf("unknown query parameter %q; accepted: limit, after, before, order, status, kind, archived", name))
		}
	}
	archived := false
	switch s := v.Get("archived"); s {
	case "", "false":
	case "true":
		archived = true
	default:
		problems = append(problems, fmt.Sprintf("archived %q is unknown; accepted: true, false", s))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			problems = append(problems, fmt.Sprintf("limit %q is out of range; accepted: a whole number from 1 to 100", s))
		}
		q.Limit = n
	}
	switch o := v.Get("order"); o {
	case "", "desc":
	case "asc":
		q.Order = state.Asc
	default:
		problems = append(problems, fmt.Sprintf("order %q is unknown; accepted: desc, asc", o))
	}
	q.After, q.Before = v.Get("after"), v.Get("before")
	if q.After != "" && q.Before != "" {
		problems = append(problems, "after and before cannot be used together")
	}
	if s := v.Get("status"); s != "" {
		q.Status = api.TaskStatus(s)
		switch q.Status {
		case api.TaskQueued, api.TaskProcessing, api.TaskCompleted, api.TaskFailed, api.TaskCancelled:
		default:
			problems = append(problems, fmt.Sprintf("status %q is unknown; accepted: queued, processing, completed, failed, cancelled", s))
		}
	}
	if k := v.Get("kind"); k != "" {
		q.Kind = encoders.Kind(k)
		if !q.Kind.Valid() {
			problems = append(problems, fmt.Sprintf("kind %q is unknown; accepted: video, audio, image, adaptive_video", k))
		}
	}
	if len(problems) > 0 {
		return q, archived, ittybit.Errorf(ittybit.ErrInvalidOption, "%s", strings.Join(problems, "; "))
	}
	return q, archived, nil
}

func (a *API) cancelTask(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	// The request id the first server gave it: a retry of this request
	// (forwarded again after leadership moved) is answered as the first
	// try would have been, not with task_finished for its own cancel.
	req := state.RequestKey{Scope: "req:cancel:" + keyID(r.Context()), Key: r.Header.Get(headerRequestID)}
	if project, err := a.cfg.Store.State().TaskProject(id); err == nil && !who(r.Context()).sees(project) {
		return notFoundTask(id, state.ErrNotFound) // another project's: as if absent
	}
	t, err := a.cfg.Store.CancelTask(r.Context(), id, a.cfg.Now().UnixMilli(), req)
	switch {
	case errors.Is(err, state.ErrTaskFinished):
		return ittybit.Errorf(ittybit.ErrTaskFinished, "task %s already ended as %s; only queued or processing tasks can be cancelled", id, t.Status)
	case err != nil:
		return notFoundTask(id, elsewhere(err))
	}
	a.view(r, &t.Task)
	writeJSON(w, http.StatusOK, t.Task)
	return nil
}
