package httpapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// operation documents one public route. openapi_test.go checks that the
// operations and the routes registered in routes() are the same set.
type operation struct {
	method, path string
	id, summary  string
	auth         bool              // needs an API key
	params       []map[string]any  // query and path parameters
	request      string            // schema of the body, "" for none
	responses    map[string]string // status → schema ("" for no body)
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func queryParam(name, desc string, schema map[string]any) map[string]any {
	return map[string]any{"name": name, "in": "query", "required": false, "description": desc, "schema": schema}
}

var webhookParam = map[string]any{"name": "id", "in": "path", "required": true, "description": "The webhook endpoint id (wh_…).", "schema": map[string]any{"type": "string"}}

var (
	projectParam    = map[string]any{"name": "id", "in": "path", "required": true, "description": "The project id (proj_…).", "schema": map[string]any{"type": "string"}}
	keyParam        = map[string]any{"name": "id", "in": "path", "required": true, "description": "The key id (key_…).", "schema": map[string]any{"type": "string"}}
	connectionParam = map[string]any{"name": "id", "in": "path", "required": true, "description": "The connection id (conn_…).", "schema": map[string]any{"type": "string"}}
)

var idParam = map[string]any{"name": "id", "in": "path", "required": true, "description": "The task id (task_…).", "schema": map[string]any{"type": "string"}}

// operations is the public API.
func operations() []operation {
	errs := func(codes ...string) map[string]string {
		m := map[string]string{}
		for _, c := range codes {
			m[c] = "Error"
		}
		return m
	}
	with := func(m map[string]string, code, schema string) map[string]string { m[code] = schema; return m }
	ops := []operation{
		{"POST", "/tasks", "createTask", "Create a task: probe → ingest → encode → upload.", true,
			[]map[string]any{{"name": "Idempotency-Key", "in": "header", "required": false, "description": "Replays within 24 h return the original task; the same key with another body is 409 idempotency_conflict.", "schema": map[string]any{"type": "string", "maxLength": maxIdempotencyKey}}},
			"CreateTaskRequest", with(errs("400", "401", "403", "409", "413", "429", "503"), "201", "Task")},
		{"GET", "/tasks", "listTasks", "List tasks, newest first, with cursors.", true,
			[]map[string]any{
				queryParam("limit", "Page size, 1–100 (default 20).", map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
				queryParam("after", "A task id: the page starts after it.", map[string]any{"type": "string"}),
				queryParam("before", "A task id: the page ends before it.", map[string]any{"type": "string"}),
				queryParam("order", "desc (default) or asc.", map[string]any{"type": "string", "enum": []string{"desc", "asc"}}),
				queryParam("status", "Only tasks with this status.", map[string]any{"type": "string", "enum": taskStatuses}),
				queryParam("kind", "Only tasks of this kind.", map[string]any{"type": "string", "enum": taskKinds}),
				queryParam("archived", "true: list the archive instead, the tasks that finished longer ago than the servers' --task-retention (the default list holds the others, and names the archive in its archive field).", map[string]any{"type": "boolean", "default": false}),
			},
			"", with(errs("400", "401", "403", "429", "503"), "200", "TaskList")},
		{"GET", "/tasks/{id}", "getTask", "Get a task; one that has retired to the archive is read from there, marked archived.", true, []map[string]any{idParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Task")},
		{"POST", "/tasks/{id}/cancel", "cancelTask", "Cancel a task; running steps are stopped.", true, []map[string]any{idParam},
			"", with(errs("401", "403", "404", "409", "429", "503"), "200", "Task")},
		{"GET", "/events", "listEvents", "List events, oldest first, after a cursor; any node answers.", true,
			[]map[string]any{
				queryParam("limit", "Page size, 1–100 (default 20).", map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
				queryParam("after", "An event id: the page starts after it. Older than the retention: 410 cursor_expired.", map[string]any{"type": "string"}),
				queryParam("type", "Only events of this type.", map[string]any{"type": "string", "enum": eventTypes()}),
				queryParam("task", "Only the events of this task.", map[string]any{"type": "string"}),
			},
			"", with(errs("400", "401", "403", "410", "429"), "200", "EventList")},
		{"GET", "/events/stream", "streamEvents", "The live feed: Server-Sent Events, each with its id; resume with Last-Event-ID. Any node serves it.", true,
			[]map[string]any{
				{"name": "Last-Event-ID", "in": "header", "required": false, "description": "The last event id received: the feed resumes after it (overrides after).", "schema": map[string]any{"type": "string"}},
				queryParam("after", "An event id: the feed starts after it (default: from the oldest kept); latest: only the events to come.", map[string]any{"type": "string"}),
				queryParam("type", "Only events of this type.", map[string]any{"type": "string", "enum": eventTypes()}),
				queryParam("task", "Only the events of this task.", map[string]any{"type": "string"}),
			},
			"", with(errs("400", "401", "403", "410", "429"), "200", "")},
		{"POST", "/webhooks", "createWebhook", "Create a webhook endpoint; the answer shows its secret, once.", true, nil,
			"WebhookRequest", with(errs("400", "401", "403", "429", "503"), "201", "Webhook")},
		{"GET", "/webhooks", "listWebhooks", "List the webhook endpoints.", true, nil, "", with(errs("401", "403", "429", "503"), "200", "WebhookList")},
		{"GET", "/webhooks/{id}", "getWebhook", "Get a webhook endpoint (without its secret).", true, []map[string]any{webhookParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Webhook")},
		{"PATCH", "/webhooks/{id}", "updateWebhook", "Change a webhook endpoint's url, events, description or status (enabled, disabled).", true, []map[string]any{webhookParam},
			"WebhookRequest", with(errs("400", "401", "403", "404", "429", "503"), "200", "Webhook")},
		{"DELETE", "/webhooks/{id}", "deleteWebhook", "Delete a webhook endpoint and its deliveries.", true, []map[string]any{webhookParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Webhook")},
		{"POST", "/webhooks/{id}/rotate", "rotateWebhook", "Make a new secret, shown once; the old one still signs, beside it, for 24 h.", true, []map[string]any{webhookParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Webhook")},
		{"POST", "/webhooks/{id}/test", "testWebhook", "Send a test message (type webhook.test) to the endpoint.", true, []map[string]any{webhookParam},
			"", with(errs("401", "403", "404", "429", "503"), "202", "Delivery")},
		{"GET", "/webhooks/{id}/deliveries", "listDeliveries", "The endpoint's deliveries, newest first, with their attempts.", true,
			[]map[string]any{webhookParam, queryParam("limit", "Page size, 1–100 (default 20).", map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 20})},
			"", with(errs("400", "401", "403", "404", "429", "503"), "200", "DeliveryList")},
		{"POST", "/webhooks/{id}/deliveries/{delivery}/retry", "retryDelivery", "Deliver again now, with the same webhook-id; not scheduled again if it fails.", true,
			[]map[string]any{webhookParam, {"name": "delivery", "in": "path", "required": true, "description": "The delivery id (dlv_… or msg_…).", "schema": map[string]any{"type": "string"}}},
			"", with(errs("401", "403", "404", "429", "503"), "202", "Delivery")},
		{"POST", "/projects", "createProject", "Create a project (an operator's key only): a tenant whose keys see only its own tasks, events and webhook endpoints.", true, nil,
			"ProjectRequest", with(errs("400", "401", "403", "429", "503"), "201", "Project")},
		{"GET", "/projects", "listProjects", "List the projects (a project's admin key: its own).", true, nil, "", with(errs("401", "403", "429", "503"), "200", "ProjectList")},
		{"GET", "/projects/{id}", "getProject", "Get a project.", true, []map[string]any{projectParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Project")},
		{"POST", "/keys", "createKey", "Create an API key of a project; the answer shows its secret, once. Needs the admin scope; a project's key makes keys of its own project only.", true, nil,
			"KeyRequest", with(errs("400", "401", "403", "429", "503"), "201", "Key")},
		{"GET", "/keys", "listKeys", "List the keys (without secrets): an operator's key sees every project's, or one project's with ?project=; a project's admin key its own project's.", true,
			[]map[string]any{queryParam("project", "Only this project's keys.", map[string]any{"type": "string"})},
			"", with(errs("400", "401", "403", "404", "429", "503"), "200", "KeyList")},
		{"GET", "/keys/{id}", "getKey", "Get a key (without its secret).", true, []map[string]any{keyParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Key")},
		{"DELETE", "/keys/{id}", "revokeKey", "Revoke a key: every server refuses it once the revocation is committed.", true, []map[string]any{keyParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Key")},
		{"POST", "/connections", "createConnection", "Create a project's S3 connection: its tasks reading or writing s3://<bucket>/… use these credentials. They are tried first (a small object put and deleted: 400 connection_failed with the S3 error code); the secret is sealed before it is stored and never shown again.", true, nil,
			"ConnectionRequest", with(errs("400", "401", "403", "429", "503"), "201", "Connection")},
		{"GET", "/connections", "listConnections", "List the connections (never their secrets): an operator's key sees every project's, or one project's with ?project=; a project's admin key its own.", true,
			[]map[string]any{queryParam("project", "Only this project's connections.", map[string]any{"type": "string"})},
			"", with(errs("400", "401", "403", "404", "429", "503"), "200", "ConnectionList")},
		{"GET", "/connections/{id}", "getConnection", "Get a connection (without its secret).", true, []map[string]any{connectionParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Connection")},
		{"PATCH", "/connections/{id}", "updateConnection", "Change a connection's name, endpoint, region, path_style or credentials (a rotation); tried as a new one is.", true, []map[string]any{connectionParam},
			"ConnectionRequest", with(errs("400", "401", "403", "404", "429", "503"), "200", "Connection")},
		{"DELETE", "/connections/{id}", "deleteConnection", "Delete a connection: the project's tasks can no longer use its bucket.", true, []map[string]any{connectionParam},
			"", with(errs("401", "403", "404", "429", "503"), "200", "Connection")},
		{"GET", "/fleet", "getFleet", "The fleet at a glance: the control plane's servers (leader, health, applied Raft index), the agents (state, encoders, sessions, the steps they run), the ready queue by step kind, and the media seconds encoded per second over the last ten minutes.", true, nil,
			"", with(errs("401", "403", "429", "503"), "200", "Fleet")},
		{"GET", "/healthz", "health", "200 while the process is alive.", false, nil, "", map[string]string{"200": "Health", "4XX": ""}},
		{"GET", "/readyz", "ready", "200 once a leader is known (and, in ittybit dev, the agent has registered).", false, nil, "",
			map[string]string{"200": "Health", "4XX": "", "503": "Error"}},
		{"GET", "/openapi.json", "openapi", "This document.", false, nil, "", map[string]string{"200": "", "4XX": ""}},
	}
	// Every body is read under the same limits: its size, and the time
	// it may take to arrive.
	for _, op := range ops {
		if op.request != "" {
			op.responses["408"], op.responses["413"] = "Error", "Error"
		}
	}
	return ops
}

var (
	taskStatuses = []string{"queued", "processing", "completed", "failed", "cancelled"}
	stepStatuses = []string{"waiting", "queued", "processing", "completed", "failed", "cancelled"}
	taskKinds    = []string{"video", "audio", "image", "adaptive_video"}
)

var statusText = map[string]string{
	"200": "OK", "201": "Created", "202": "Accepted: the delivery is queued.", "400": "The request is invalid; kind and message say what to change.",
	"401": "No API key, or a wrong one.", "403": "The key's scopes do not open this route (forbidden).", "404": "No such task.", "409": "An idempotency conflict, or the task already ended.",
	"408": "The body did not arrive within the body timeout (request_timeout).", "413": "The body is over the size limit.", "429": "Too many requests for this API key; see Retry-After.",
	"503": "No leader is available; see Retry-After.",
	"410": "The cursor names an event older than the retention (cursor_expired): list again from the oldest.",
	// The routes without a 4xx of their own: what Go's HTTP server answers,
	// in plain text, before ittybit sees the request.
	"4XX": "A malformed request, refused by the HTTP server before ittybit reads it: 400 (a bad request line or Host header) or 431 (headers over the size limit), in plain text.",
}

// openAPIDocument builds the OpenAPI 3.1 document.
func openAPIDocument() map[string]any {
	paths := map[string]any{}
	for _, op := range operations() {
		item, _ := paths[op.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.path] = item
		}
		o := map[string]any{"operationId": op.id, "summary": op.summary}
		if len(op.params) > 0 {
			o["parameters"] = op.params
		}
		if op.request != "" {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(op.request)}}}
		}
		if !op.auth {
			o["security"] = []any{}
		}
		resp := map[string]any{}
		codes := make([]string, 0, len(op.responses))
		for c := range op.responses {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		for _, c := range codes {
			r := map[string]any{"description": statusText[c]}
			if r["description"] == "" || r["description"] == nil {
				r["description"] = "Response " + c
			}
			if s := op.responses[c]; s != "" {
				r["content"] = map[string]any{"application/json": map[string]any{"schema": ref(s)}}
			} else if op.path == "/events/stream" && c == "200" {
				r["description"] = "text/event-stream: per event the lines id, event (its type) and data (the Event as JSON); a comment every 15 s."
				r["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}
			} else if op.path == "/openapi.json" && c == "200" {
				r["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
			}
			resp[c] = r
		}
		o["responses"] = resp
		item[strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title": "ittybit", "version": "1",
			"description": "Create media-processing tasks: a URL in, and video, audio, images or adaptive HLS out, through probe → ingest → encode → upload.",
			"license":     map[string]any{"name": "Apache License 2.0", "identifier": "Apache-2.0"},
		},
		"paths":      paths,
		"security":   []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{"schemas": schemas(), "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "An API key."}}},
	}
}

var (
	openAPIOnce sync.Once
	openAPIJSON []byte
)

// openapi serves the document with the server it was asked of as its
// servers entry: the base URL a client generated from it should call.
func (a *API) openapi(w http.ResponseWriter, r *http.Request) error {
	openAPIOnce.Do(func() {
		openAPIJSON, _ = json.MarshalIndent(openAPIDocument(), "", "  ")
	})
	servers, _ := json.Marshal([]map[string]string{{"url": baseURL(r), "description": "the ittybit server that served this document"}})
	body := make([]byte, 0, len(openAPIJSON)+len(servers)+16)
	body = append(body, "{\n  \"servers\": "...)
	body = append(body, servers...)
	body = append(body, ',')
	body = append(body, openAPIJSON[1:]...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, err := w.Write(body)
	return err
}

// baseURL is the scheme and host a client used to reach this server: as a
// proxy in front says (X-Forwarded-Proto), else as the connection is.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host
}
