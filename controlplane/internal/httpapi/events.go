package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Events are read from this node's own state: every node applies the same
// log, so any node answers GET /events and serves the live feed, and a
// client resuming through another node misses nothing (ids are the log's
// order).

// eventID formats an event's sequence number as its id: "evt_" and 16
// hex digits, so that ids sort as the events do.
func eventID(seq uint64) string { return fmt.Sprintf("evt_%016x", seq) }

// parseEventID reads an event id back; ok is false when s is not one.
func parseEventID(s string) (uint64, bool) {
	hex, ok := strings.CutPrefix(s, "evt_")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// eventView shows a stored event: its task as GET /tasks/{id} showed it
// then, less what only a reader's signed URLs would show (managed files
// are named by the task's files, not linked).
func eventView(e *state.Event) api.Event {
	out := api.Event{ID: eventID(e.Seq), Object: "event", Type: e.Type, CreatedAt: e.CreatedAt, Data: api.EventData{Task: e.Task()}}
	if e.Endpoint != nil {
		w := webhookView(e.Endpoint)
		out.Data.Webhook = &w
		return out
	}
	t := &out.Data.Task
	t.Steps = slices.Clone(t.Steps)
	for i := range t.Steps {
		s := &t.Steps[i]
		s.Output, s.Input = dropManagedURLs(s.Output), dropManagedURLs(s.Input)
		if s.ID == e.Step {
			out.Step = &api.EventStep{ID: s.ID, Kind: s.Kind, Attempt: e.Attempt}
		}
	}
	if t.Output != nil && strings.HasPrefix(*t.Output, ManagedScheme) {
		t.Output = nil
	}
	return out
}

// dropManagedURLs removes the managed-storage URLs from a step's JSON.
func dropManagedURLs(raw json.RawMessage) json.RawMessage {
	return rewriteManaged(raw, func(string) (string, bool) { return "", false })
}

// afterLatest stands for the cursor latest, the last event committed when
// the stream starts: only events to come.
const afterLatest = ^uint64(0)

// eventQuery reads and checks the query of GET /events and its stream.
// The stream also resumes from a Last-Event-ID header.
func eventQuery(r *http.Request, stream bool) (state.EventQuery, error) {
	v := r.URL.Query()
	q := state.EventQuery{Limit: 20}
	var problems []string
	accepted := "after, limit, type, task"
	if stream {
		accepted = "after, type, task"
	}
	for name := range v {
		if !slices.Contains(strings.Split(accepted, ", "), name) {
			problems = append(problems, fmt.Sprintf("unknown query parameter %q; accepted: %s", name, accepted))
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			problems = append(problems, fmt.Sprintf("limit %q is out of range; accepted: a whole number from 1 to 100", s))
		}
		q.Limit = n
	}
	after := v.Get("after")
	if last := r.Header.Get("Last-Event-ID"); stream && last != "" {
		after = last
	}
	if stream && after == "latest" {
		q.After = afterLatest
	} else if after != "" {
		seq, ok := parseEventID(after)
		if !ok {
			problems = append(problems, fmt.Sprintf("cursor %q is not an event id; accepted: the id of an event, evt_ and 16 hex digits (the stream also takes latest: only events to come)", after))
		}
		q.After = seq
	}
	if s := v.Get("type"); s != "" {
		q.Type = api.EventType(s)
		if !slices.Contains(api.EventTypes, q.Type) {
			problems = append(problems, fmt.Sprintf("type %q is unknown; accepted: %s", s, strings.Join(eventTypes(), ", ")))
		}
	}
	q.TaskID = v.Get("task")
	q.Project = who(r.Context()).project // a project's key sees its own events only
	if len(problems) > 0 {
		return q, ittybit.Errorf(ittybit.ErrInvalidOption, "%s", strings.Join(problems, "; "))
	}
	return q, nil
}

func cursorExpired(err error) error {
	if errors.Is(err, state.ErrCursorExpired) {
		return ittybit.Errorf(ittybit.ErrCursorExpired, "the cursor names an event older than the events kept (the retention): list again from the oldest, GET /events without after")
	}
	return err
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := eventQuery(r, false)
	if err != nil {
		return err
	}
	page, more, err := a.cfg.Store.State().Events(q)
	if err != nil {
		return cursorExpired(err)
	}
	out := api.List[api.Event]{Object: "list", Data: make([]api.Event, 0, len(page)), HasMore: more}
	for _, e := range page {
		out.Data = append(out.Data, eventView(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// streamBatch is how many events the live feed reads at a time.
const streamBatch = 100

// streamEvents serves the live feed as Server-Sent Events: each event with
// its id (a client that reconnects sends the last as Last-Event-ID and
// gets every event after it, once, in order), then new events as they are
// committed, and a comment every KeepAlive so that proxies keep the
// connection open. It ends when the client goes, takes nothing for
// WriteStall (the response's write deadline, deadline.go: it may come
// back with Last-Event-ID), or the server stops.
func (a *API) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := eventQuery(r, true)
	if err != nil {
		return err
	}
	st := a.cfg.Store.State()
	q.Limit = streamBatch
	wake := st.EventsChanged()
	if q.After == afterLatest {
		q.After = st.LatestEvent()
	}
	page, more, err := st.Events(q)
	if err != nil {
		return cursorExpired(err)
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	keep := time.NewTicker(a.cfg.KeepAlive)
	defer keep.Stop()
	for {
		for _, e := range page {
			data, err := json.Marshal(eventView(e))
			if err != nil {
				return nil
			}
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", eventID(e.Seq), e.Type, data); err != nil {
				return nil
			}
			q.After = e.Seq
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if !more {
			select {
			case <-wake:
			case <-keep.C:
				if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
					return nil
				}
			case <-r.Context().Done():
				return nil
			case <-a.cfg.Done:
				return nil
			}
		}
		wake = st.EventsChanged()
		if page, more, err = st.Events(q); err != nil {
			// Trimmed while the client read: say so on the feed and end.
			fmt.Fprintf(w, "event: error\ndata: {\"kind\":%q}\n\n", ittybit.ErrCursorExpired)
			return nil
		}
	}
}
