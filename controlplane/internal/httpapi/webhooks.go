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
	"github.com/ittybit-oss/ittybit/controlplane/internal/webhooks"
)

// rotationGrace is how long an endpoint's old secret signs beside the new
// one after a rotation.
const rotationGrace = 24 * time.Hour

// maxEventBytes bounds a delivery's body: a larger event's task is cut
// down to its id, kind and status, with where to fetch the rest.
const maxEventBytes = 20_000

// EventJSON is an event as GET /events shows it and webhooks deliver it,
// under 20 kB: an event whose task is larger carries only the task's id,
// kind and status, and data_url, where GET fetches the task whole.
func EventJSON(e *state.Event) []byte {
	v := eventView(e)
	data, _ := json.Marshal(v)
	if len(data) < maxEventBytes {
		return data
	}
	trimmed := struct {
		api.Event
		Data    map[string]any `json:"data"`
		DataURL string         `json:"data_url"`
	}{Event: v, DataURL: "/tasks/" + v.Data.ID,
		Data: map[string]any{"id": v.Data.ID, "object": "task", "kind": v.Data.Kind, "status": v.Data.Status, "trimmed": true}}
	data, _ = json.Marshal(trimmed)
	return data
}

func webhookView(e *state.Endpoint) api.Webhook {
	w := api.Webhook{ID: e.ID, Object: "webhook", URL: e.URL, Events: e.Events, Description: e.Description, Status: "enabled",
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if e.Disabled != "" {
		w.Status, w.DisabledReason = "disabled", e.Disabled
	}
	if e.FailingSince > 0 {
		f := e.FailingSince
		w.FailingSince = &f
	}
	return w
}

func deliveryView(d *state.Delivery) api.Delivery {
	out := api.Delivery{ID: d.ID, Object: "delivery", Webhook: d.EndpointID, EventID: d.ID, EventType: d.EventType,
		Status: string(d.Status), CreatedAt: d.CreatedAt, Attempts: []api.DeliveryAttempt{}}
	if d.EventSeq != 0 {
		out.EventID = eventID(d.EventSeq)
	}
	if d.Status == state.DeliveryPending {
		n := d.NextAt
		out.NextAttemptAt = &n
	}
	for _, a := range d.Attempts {
		out.Attempts = append(out.Attempts, api.DeliveryAttempt{At: a.At, StatusCode: a.Status, LatencyMs: a.LatencyMs, Result: a.Result, Error: a.Error})
	}
	return out
}

// checkWebhook checks a create or change: the URL reachable under the
// SSRF rules, the event types known, the description short.
func (a *API) checkWebhook(r *http.Request, req api.WebhookRequest, create bool) error {
	var problems []error
	if req.URL == nil && create {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "url", "url is required; accepted: the http:// or https:// URL to deliver events to"))
	}
	if req.URL != nil {
		if err := a.sender.CheckURL(r.Context(), *req.URL); err != nil {
			problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "url", "%v", err))
		}
	}
	if req.Events == nil && create {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "events", `events is required; accepted: a list of event types, or ["*"] for all`))
	}
	if req.Events != nil && len(req.Events) == 0 {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "events", `events is empty: list event types, or ["*"] for all`))
	}
	for _, e := range req.Events {
		if e != "*" && !slices.Contains(api.EventTypes, api.EventType(e)) {
			problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "events", "event type %q is unknown; accepted: %s, or * for all", e, strings.Join(eventTypes(), ", ")))
		}
	}
	if req.Description != nil && len(*req.Description) > 500 {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "description", "description is %d bytes; accepted: at most 500", len(*req.Description)))
	}
	if req.Status != nil && (create || (*req.Status != "enabled" && *req.Status != "disabled")) {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "status", "status %q: accepted, when changing an endpoint: enabled, disabled", *req.Status))
	}
	return errors.Join(problems...)
}

func decodeWebhook(r *http.Request) (api.WebhookRequest, error) {
	var req api.WebhookRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, ittybit.Errorf(ittybit.ErrInvalidJSON, "the body is not a webhook endpoint: %v; accepted: {\"url\", \"events\", \"description\"}", err)
	}
	return req, nil
}

// webhookOp writes one op and returns its result, or the error to answer.
func (a *API) webhookOp(r *http.Request, op state.WebhookOp) (state.WebhookResult, error) {
	if op.Op != state.WebhookCreate {
		if _, err := a.endpoint(r); err != nil {
			return state.WebhookResult{}, err // absent, or another project's
		}
	}
	res, err := a.cfg.Store.WebhookOps(r.Context(), []state.WebhookOp{op})
	if err != nil {
		return state.WebhookResult{}, elsewhere(err)
	}
	if res[0].Err != "" {
		return res[0], ittybit.Errorf(ittybit.ErrNotFound, "no webhook endpoint %q", r.PathValue("id"))
	}
	return res[0], nil
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeWebhook(r)
	if err != nil {
		return err
	}
	if err := a.checkWebhook(r, req, true); err != nil {
		return err
	}
	secret, err := webhooks.NewSecret(nil)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	e := &state.Endpoint{ID: newID("wh_", now), URL: *req.URL, Events: req.Events, Secrets: []state.Secret{{Secret: secret}},
		CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli(), Project: who(r.Context()).project}
	if req.Description != nil {
		e.Description = *req.Description
	}
	res, err := a.webhookOp(r, state.WebhookOp{Op: state.WebhookCreate, Now: now.UnixMilli(), Endpoint: e})
	if err != nil {
		return err
	}
	out := webhookView(res.Endpoint)
	out.Secret = secret
	w.Header().Set("Location", "/webhooks/"+e.ID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	out := api.List[api.Webhook]{Object: "list", Data: []api.Webhook{}}
	p := who(r.Context())
	for _, e := range a.cfg.Store.State().Endpoints() {
		if p.sees(e.Project) {
			out.Data = append(out.Data, webhookView(e))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) endpoint(r *http.Request) (*state.Endpoint, error) {
	e, err := a.cfg.Store.State().Endpoint(r.PathValue("id"))
	if err != nil || !who(r.Context()).sees(e.Project) {
		return nil, ittybit.Errorf(ittybit.ErrNotFound, "no webhook endpoint %q", r.PathValue("id"))
	}
	return e, nil
}

func (a *API) getWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := a.endpoint(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, webhookView(e))
	return nil
}

func (a *API) updateWebhook(w http.ResponseWriter, r *http.Request) error {
	cur, err := a.endpoint(r)
	if err != nil {
		return err
	}
	req, err := decodeWebhook(r)
	if err != nil {
		return err
	}
	if err := a.checkWebhook(r, req, false); err != nil {
		return err
	}
	next := *cur
	if req.URL != nil {
		next.URL = *req.URL
	}
	if req.Events != nil {
		next.Events = req.Events
	}
	if req.Description != nil {
		next.Description = *req.Description
	}
	if req.Status != nil {
		next.Disabled = ""
		if *req.Status == "disabled" {
			next.Disabled = "disabled by hand"
		}
	}
	res, err := a.webhookOp(r, state.WebhookOp{Op: state.WebhookUpdate, Now: a.cfg.Now().UnixMilli(), ID: cur.ID, Endpoint: &next})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, webhookView(res.Endpoint))
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	res, err := a.webhookOp(r, state.WebhookOp{Op: state.WebhookDelete, Now: a.cfg.Now().UnixMilli(), ID: r.PathValue("id")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, webhookView(res.Endpoint))
	return nil
}

func (a *API) rotateWebhook(w http.ResponseWriter, r *http.Request) error {
	secret, err := webhooks.NewSecret(nil)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	res, err := a.webhookOp(r, state.WebhookOp{Op: state.WebhookRotate, Now: now.UnixMilli(), ID: r.PathValue("id"), Secret: secret,
		Until: now.Add(rotationGrace).UnixMilli()})
	if err != nil {
		return err
	}
	out := webhookView(res.Endpoint)
	out.Secret = secret
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	e, err := a.endpoint(r)
	if err != nil {
		return err
	}
	limit := 20
	for name := range r.URL.Query() {
		if name != "limit" {
			return ittybit.Errorf(ittybit.ErrInvalidOption, "unknown query parameter %q; accepted: limit", name)
		}
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return ittybit.Errorf(ittybit.ErrInvalidOption, "limit %q is out of range; accepted: a whole number from 1 to 100", s)
		}
		limit = n
	}
	out := api.List[api.Delivery]{Object: "list", Data: []api.Delivery{}}
	all := a.cfg.Store.State().Deliveries(e.ID, limit+1)
	out.HasMore = len(all) > limit
	for _, d := range all[:min(len(all), limit)] {
		out.Data = append(out.Data, deliveryView(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.endpoint(r); err != nil {
		return err
	}
	res, err := a.cfg.Store.WebhookOps(r.Context(), []state.WebhookOp{{Op: state.WebhookRetry, Now: a.cfg.Now().UnixMilli(), ID: r.PathValue("id"), Delivery: r.PathValue("delivery")}})
	if err != nil {
		return elsewhere(err)
	}
	if res[0].Err != "" {
		return ittybit.Errorf(ittybit.ErrNotFound, "no delivery %q to webhook endpoint %q", r.PathValue("delivery"), r.PathValue("id"))
	}
	writeJSON(w, http.StatusAccepted, deliveryView(res[0].Delivery))
	return nil
}

func (a *API) testWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := a.endpoint(r)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	id := newID("msg_", now)
	payload, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": api.EventWebhookTest, "created_at": now.UnixMilli(),
		"data": map[string]any{"webhook": e.ID, "message": fmt.Sprintf("a test message from ittybit to %s", e.URL)}})
	test := &state.Delivery{ID: id, EventType: api.EventWebhookTest, Payload: payload, CreatedAt: now.UnixMilli()}
	res, err := a.webhookOp(r, state.WebhookOp{Op: state.WebhookTest, Now: now.UnixMilli(), ID: e.ID, Test: test})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, deliveryView(res.Delivery))
	return nil
}
