package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
)

const (
	testKey   = "test-api-key"
	testToken = "test-node-token"
)

// mustStore opens a real single-node store in a temporary folder, with
// short Raft timeouts, and waits until it leads.
func mustStore(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.Open(store.Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: tb.TempDir(), Bootstrap: true,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !st.LeaderReady() {
		if time.Now().After(deadline) {
			tb.Fatal("the store did not become a ready leader within 10 s")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	return st
}

// mustAPI returns an API over a fresh store with the test key and token;
// edit changes the config first.
func mustAPI(tb testing.TB, edit func(*Config)) *API {
	tb.Helper()
	keys := &Keys{}
	keys.AddAPIKey(testKey)
	keys.AddNodeToken(testToken)
	cfg := Config{Store: mustStore(tb), Keys: keys}
	if edit != nil {
		edit(&cfg)
	}
	return New(cfg)
}

// serve sends one request through the handler; auth is the whole
// Authorization header ("" for none).
func serve(a *API, method, target, body, auth string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, req)
	return w
}

// errorOf decodes an error body, failing the test when the answer is not
// one.
func errorOf(tb testing.TB, w *httptest.ResponseRecorder) api.Error {
	tb.Helper()
	var e api.Error
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Kind == "" || e.Message == "" {
		tb.Fatalf("%d %s: not an error body {kind, message}", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	return e
}

func wantError(tb testing.TB, w *httptest.ResponseRecorder, status int, kind ittybit.ErrorKind) api.Error {
	tb.Helper()
	if w.Code != status {
		tb.Fatalf("got %d %s, want %d %s", w.Code, bytes.TrimSpace(w.Body.Bytes()), status, kind)
	}
	e := errorOf(tb, w)
	if e.Kind != kind {
		tb.Errorf("kind %q (%s), want %q", e.Kind, e.Message, kind)
	}
	return e
}

const withKey = "Bearer " + testKey // the Authorization header of the test key

func TestCreateDecoding(t *testing.T) {
	a := mustAPI(t, nil)
	const in = `"input":"https://example.com/a.mov"`
	tests := []struct {
		name   string
		body   string
		status int
		kind   ittybit.ErrorKind // for errors
		nErrs  int               // problems listed in "errors" (0: the field is absent)
	}{
		{"empty body", ``, 400, "invalid_json", 0},
		{"blank body", " \n\t", 400, "invalid_json", 0},
		{"array", `[{` + in + `,"kind":"video"}]`, 400, "invalid_json", 0},
		{"string", `"video"`, 400, "invalid_json", 0},
		{"number", `42`, 400, "invalid_json", 0},
		{"null", `null`, 400, "invalid_json", 0},
		{"truncated", `{` + in + `,"kind":`, 400, "invalid_json", 0},
		{"trailing garbage", `{` + in + `,"kind":"video"} x`, 400, "invalid_json", 0},
		{"unknown field", `{` + in + `,"kind":"video","callback_url":"https://example.com"}`, 400, "invalid_json", 0},
		{"unknown priority", `{` + in + `,"kind":"video","priority":"urgent"}`, 400, "invalid_option", 0},
		{"misspelt field", `{"url":"https://example.com/a.mov","kind":"video"}`, 400, "invalid_json", 0},
		{"input a number", `{"input":42,"kind":"video"}`, 400, "invalid_input", 0},
		{"input an object", `{"input":{"url":"https://example.com/a.mov"},"kind":"video"}`, 400, "invalid_input", 0},
		{"input null", `{"input":null,"kind":"video"}`, 400, "input_required", 0},
		{"kind a number", `{` + in + `,"kind":1}`, 400, "invalid_kind", 0},
		{"kind an array", `{` + in + `,"kind":["video"]}`, 400, "invalid_kind", 0},
		{"options a string", `{` + in + `,"kind":"video","options":"fast"}`, 400, "invalid_option", 0},
		{"options an array", `{` + in + `,"kind":"video","options":[]}`, 400, "invalid_option", 0},
		{"width a word", `{` + in + `,"kind":"video","options":{"width":"wide"}}`, 400, "invalid_option", 0},
		{"fps a string", `{` + in + `,"kind":"video","options":{"fps":"30"}}`, 400, "invalid_option", 0},
		{"bitrate a fraction", `{` + in + `,"kind":"video","options":{"bitrate":1000000.5}}`, 400, "invalid_option", 0},
		{"output a number", `{` + in + `,"kind":"video","output":7}`, 400, "invalid_output", 0},
		{"metadata an array", `{` + in + `,"kind":"video","metadata":["a"]}`, 400, "invalid_json", 0},
		{"metadata a string", `{` + in + `,"kind":"video","metadata":"a=b"}`, 400, "invalid_json", 0},
		{"two wrong types, both reported", `{"input":42,"kind":1}`, 400, "invalid_input", 2},
		// Wrong JSON types are reported before the values are validated.
		{"wrong type and bad option", `{` + in + `,"kind":"video","output":7,"options":{"fps":"30"}}`, 400, "invalid_output", 0},
		{"two bad options, both reported", `{` + in + `,"kind":"video","options":{"fps":"30","width":-1}}`, 400, "invalid_option", 2},
		{"valid, nulls for optional fields", `{` + in + `,"kind":"video","options":null,"output":null,"metadata":null}`, 201, "", 0},
		{"valid, all fields", `{` + in + `,"kind":"video","options":{"width":"50%","format":"webm"},"output":"s3://my-bucket/k.webm","metadata":{"b":1,"a":{"c":[1,2]}}}`, 201, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(a, "POST", "/tasks", tc.body, withKey)
			if tc.status == 201 {
				if w.Code != 201 {
					t.Fatalf("got %d %s, want 201", w.Code, w.Body)
				}
				return
			}
			e := wantError(t, w, tc.status, tc.kind)
			if len(e.Errors) != tc.nErrs {
				t.Errorf("%d problems listed, want %d: %s", len(e.Errors), tc.nErrs, w.Body)
			}
		})
	}
}

func TestCreateEchoes(t *testing.T) {
	a := mustAPI(t, nil)
	w := serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/a.mov","options":{"width":"50%","start":5},"metadata":{"b":1, "a":{"c":[1, 2]}}}`, withKey)
	if w.Code != 201 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	var task struct {
		Options  json.RawMessage `json:"options"`
		Metadata json.RawMessage `json:"metadata"`
		Output   *string         `json:"output"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &task); err != nil {
		t.Fatal(err)
	}
	if got, want := string(task.Options), `{"width":"50%","start":5}`; got != want {
		t.Errorf("options %s, want %s", got, want)
	}
	if got, want := string(task.Metadata), `{"a":{"c":[1,2]},"b":1}`; got != want {
		t.Errorf("metadata %s, want %s (as given, keys sorted)", got, want)
	}
	if task.Output != nil {
		t.Errorf("output %q, want null", *task.Output)
	}
	long := strings.Repeat("k", maxIdempotencyKey+1)
	wantError(t, serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/a.mov"}`, withKey, "Idempotency-Key", long), 400, "invalid_json")
}

func TestAuth(t *testing.T) {
	hashed := "other-api-key"
	a := mustAPI(t, func(c *Config) {
		if err := c.Keys.AddAPIKeyHash("sha256:" + HashKey(hashed)); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		name           string
		method, target string
		auth           string
		status         int
		kind           ittybit.ErrorKind // "" when the request must pass
	}{
		{"task API, no header", "GET", "/tasks", "", 401, "token_missing"},
		{"task API, wrong key", "GET", "/tasks", "Bearer nope", 401, "token_invalid"},
		{"task API, empty withKey", "GET", "/tasks", "Bearer ", 401, "token_invalid"},
		{"task API, other scheme", "GET", "/tasks", "Basic " + testKey, 401, "token_invalid"},
		{"task API, node token", "POST", "/tasks", "Bearer " + testToken, 401, "token_invalid"},
		{"task API, node token on get", "GET", "/tasks/task_x", "Bearer " + testToken, 401, "token_invalid"},
		{"task API, node token on cancel", "POST", "/tasks/task_x/cancel", "Bearer " + testToken, 401, "token_invalid"},
		{"task API, key", "GET", "/tasks", withKey, 200, ""},
		{"task API, lowercase scheme", "GET", "/tasks", "bearer " + testKey, 200, ""},
		{"task API, key given by its hash", "GET", "/tasks", "Bearer " + hashed, 200, ""},
		{"internal, no header", "GET", "/internal/state", "", 401, "token_missing"},
		{"internal, API key", "GET", "/internal/state", withKey, 401, "token_invalid"},
		{"internal join, API key", "POST", "/internal/join", withKey, 401, "token_invalid"},
		{"internal, wrong token", "GET", "/internal/state", "Bearer nope", 401, "token_invalid"},
		{"internal, node token", "GET", "/internal/state", "Bearer " + testToken, 200, ""},
		{"healthz needs nothing", "GET", "/healthz", "", 200, ""},
		{"readyz needs nothing", "GET", "/readyz", "", 200, ""},
		{"openapi needs nothing", "GET", "/openapi.json", "", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(a, tc.method, tc.target, "", tc.auth)
			if tc.kind == "" {
				if w.Code != tc.status {
					t.Errorf("got %d %s, want %d", w.Code, w.Body, tc.status)
				}
				return
			}
			wantError(t, w, tc.status, tc.kind)
		})
	}
	if err := (&Keys{}).AddAPIKeyHash("not-hex"); err == nil {
		t.Error("AddAPIKeyHash accepted a hash that is not 64 hex digits")
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	a := mustAPI(t, func(c *Config) { c.MaxBodyBytes = limit })
	body := func(n int) string {
		s := `{"input":"https://example.com/a.mov","kind":"video","metadata":{"pad":"`
		return s + strings.Repeat("x", n-len(s)-3) + `"}}`
	}
	if w := serve(a, "POST", "/tasks", body(limit), withKey); w.Code != 201 {
		t.Errorf("a body of exactly %d bytes: got %d %s, want 201", limit, w.Code, w.Body)
	}
	e := wantError(t, serve(a, "POST", "/tasks", body(limit+1), withKey), 413, "payload_too_large")
	if !strings.Contains(e.Message, strconv.Itoa(limit)) {
		t.Errorf("message %q does not name the limit", e.Message)
	}
	// Routes that take no body read it under the same limit.
	wantError(t, serve(a, "GET", "/tasks", strings.Repeat("x", 4*limit), withKey), 413, "payload_too_large")
}

func TestRateLimit(t *testing.T) {
	const other = "second-api-key"
	a := mustAPI(t, func(c *Config) {
		c.RateLimit = 1 // burst 2
		c.Keys.AddAPIKey(other)
	})
	var w *httptest.ResponseRecorder
	for i := 0; i < 10; i++ {
		if w = serve(a, "GET", "/tasks", "", withKey); w.Code != 200 {
			break
		}
	}
	wantError(t, w, 429, "rate_limited")
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want a whole number of seconds ≥ 1", w.Header().Get("Retry-After"))
	}
	// Each key has its own bucket; health is not limited.
	if w := serve(a, "GET", "/tasks", "", "Bearer "+other); w.Code != 200 {
		t.Errorf("another API key: got %d %s, want 200", w.Code, w.Body)
	}
	if w := serve(a, "GET", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("healthz: got %d", w.Code)
	}
}

func TestRoutesNotAllowedAndNotFound(t *testing.T) {
	a := mustAPI(t, nil)
	tests := []struct {
		method, target string
		status         int
		kind           ittybit.ErrorKind
		allow          string
	}{
		{"DELETE", "/tasks", 405, "method_not_allowed", "GET, HEAD, POST"},
		{"PUT", "/tasks", 405, "method_not_allowed", "GET, HEAD, POST"},
		{"DELETE", "/tasks/task_x", 405, "method_not_allowed", "GET, HEAD"},
		{"PATCH", "/tasks/task_x", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/tasks/task_x/cancel", 405, "method_not_allowed", "POST"},
		{"GET", "/tasks/task_x/retry", 404, "not_found", ""},
		{"GET", "/jobs", 404, "not_found", ""},
		{"GET", "/tasks/task_missing", 404, "not_found", ""},
		{"POST", "/tasks/task_missing/cancel", 404, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			w := serve(a, tc.method, tc.target, "", withKey)
			wantError(t, w, tc.status, tc.kind)
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

// noLeader is a Store of a node that knows no leader (an election, or no
// quorum).
type noLeader struct{ st *state.Store }

func (n noLeader) State() *state.Store                              { return n.st }
func (noLeader) NodeID() string                                     { return "n2" }
func (noLeader) IsLeader() bool                                     { return false }
func (noLeader) LeaderReady() bool                                  { return false }
func (noLeader) VerifyLeader() error                                { return errors.New("not the leader") }
func (noLeader) AppliedIndex() uint64                               { return 0 }
func (noLeader) StateIndex() uint64                                 { return 0 }
func (noLeader) Leader() (id, addr string, ok bool)                 { return "", "", false }
func (noLeader) Join(context.Context, string, string, string) error { return store.ErrNotLeader }
func (noLeader) Leave(string) error                                 { return store.ErrNotLeader }
func (noLeader) HandOff() (string, error)                           { return "", nil }
func (noLeader) SetVotersApply(int, uint64)                         {}
func (noLeader) VotersEpoch() uint64                                { return 0 }
func (noLeader) Peers() (map[string]string, error) {
	return map[string]string{"n2": "127.0.0.1:1"}, nil
}
func (noLeader) Member() bool     { return true }
func (noLeader) RaftAddr() string { return "127.0.0.1:1" }
func (noLeader) CreateTasks(context.Context, []state.SeedRequest) ([]state.CreateResult, error) {
	return nil, store.ErrNotLeader
}
func (noLeader) CancelTask(context.Context, string, int64, state.RequestKey) (*state.Task, error) {
	return nil, store.ErrNotLeader
}
func (noLeader) WebhookOps(context.Context, []state.WebhookOp) ([]state.WebhookResult, error) {
	return nil, store.ErrNotLeader
}
func (noLeader) AccessOps(context.Context, []state.AccessOp) ([]state.AccessResult, error) {
	return nil, store.ErrNotLeader
}

func TestNoLeader(t *testing.T) {
	keys := &Keys{}
	keys.AddAPIKey(testKey)
	a := New(Config{Store: noLeader{state.New()}, Keys: keys, ForwardTimeout: 200 * time.Millisecond})
	for _, tc := range []struct{ method, target string }{
		{"POST", "/tasks"}, {"GET", "/tasks"}, {"GET", "/tasks/task_x"}, {"POST", "/tasks/task_x/cancel"}, {"GET", "/readyz"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			start := time.Now()
			w := serve(a, tc.method, tc.target, `{"input":"https://example.com/a.mov","kind":"video"}`, withKey)
			wantError(t, w, 503, "unavailable")
			if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q, want a whole number of seconds", w.Header().Get("Retry-After"))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("answered after %v; the forward timeout is 200 ms", d)
			}
		})
	}
	// A request forwarded here as if to the leader is refused at once,
	// for the sender to find the leader again.
	w := serve(a, "POST", "/tasks", `{}`, withKey, headerForwardedBy, "n1", headerRequestID, "r1")
	wantError(t, w, 503, "unavailable")
	// Health does not depend on a leader.
	if w := serve(a, "GET", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("healthz: %d", w.Code)
	}
}
