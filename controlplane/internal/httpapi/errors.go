package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// handlerFunc is a handler that returns its error for one adapter to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts h: an error becomes the contract's JSON error body with its
// status. Internal details are logged, never sent.
func (a *API) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away (an agent's long-poll, mostly)
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		ae = api.FromError(err)
	}
	if ae.Kind == "" || ae.Kind == ittybit.ErrInternal {
		a.log.Error("request failed", append(requestAttrs(r), "err", err)...)
		ae = &api.Error{Kind: ittybit.ErrInternal, Message: "internal error; the server's log has the details"}
	}
	status := api.Status(ae.Kind)
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	writeJSON(w, status, ae)
}

// requestAttrs are the log attributes of a request: the method and path,
// and for a request about a task or step (/tasks/{id}, a step report) the
// task_id, step_id and node_id every line about a task carries ("" where
// the path does not say).
func requestAttrs(r *http.Request) []any {
	attrs := []any{"method", r.Method, "path", r.URL.Path}
	task, node := "", r.PathValue("name")
	step := ""
	switch {
	case strings.HasPrefix(r.Pattern, "POST /internal/steps/"):
		step = r.PathValue("id")
	case strings.Contains(r.Pattern, "/tasks/{id}"):
		task = r.PathValue("id")
	}
	if task != "" || step != "" {
		attrs = append(attrs, "task_id", task, "step_id", step, "node_id", node)
	} else if node != "" {
		attrs = append(attrs, "node_id", node)
	}
	return attrs
}

// retryAfter is an error that sets Retry-After.
func retryAfter(w http.ResponseWriter, seconds int, err error) error {
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	var t *api.Task
	switch x := v.(type) {
	case *api.Task:
		t = x
	case api.Task:
		t = &x
	}
	if t != nil && writeTask(w, status, t) {
		return
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeTask answers with a task through its own encoder (api.Task's
// AppendJSON: the same bytes as encoding/json's, made faster). It
// reports false, having written nothing, when the task does not encode.
func writeTask(w http.ResponseWriter, status int, t *api.Task) bool {
	return writeAppended(w, status, t.AppendJSON)
}

// writeSeedTask answers with the task a seed describes, written from the
// seed (Seed.AppendTaskJSON: the task's bytes, without building it and
// its steps).
func writeSeedTask(w http.ResponseWriter, status int, sd *state.Seed) {
	w.Header().Set("Content-Type", "application/json")
	if !writeAppended(w, status, sd.AppendTaskJSON) {
		writeJSON(w, status, sd.Task())
	}
}

// writeAppended answers with the JSON value appendJSON appends, and a
// newline; it reports false, having written nothing, when that fails.
func writeAppended(w http.ResponseWriter, status int, appendJSON func([]byte) ([]byte, error)) bool {
	bp := taskBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			taskBufs.Put(bp)
		}
	}()
	b, err := appendJSON((*bp)[:0])
	b = append(b, '\n') // as json.Encoder ends a value
	*bp = b
	if err != nil {
		return false
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return true
}

// taskBufs are the buffers of writeTask: the server copies what a
// handler writes, so one goes back as soon as the answer is written.
var taskBufs = sync.Pool{New: func() any { return new([]byte) }}

func notFound(w http.ResponseWriter, r *http.Request) error {
	return ittybit.Errorf(ittybit.ErrNotFound, "no route %s %s; see /openapi.json for the routes", r.Method, r.URL.Path)
}

// methodNotAllowed answers 405 for a path whose methods are allow (the
// value of the Allow header).
func methodNotAllowed(allow string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		return ittybit.Errorf(ittybit.ErrMethodNotAllowed, "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)
	}
}
