package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/httpapi"
	"github.com/ittybit-oss/ittybit/internal/wait"
	"github.com/ittybit-oss/ittybit/storage"
)

// TestAuthMatrix sends every route the server registers (its own list, so
// a route added later cannot escape) with no credential, a wrong one, an
// API key and a node token, over real HTTP. Only the credential the route
// takes passes: an API key opens no agent route, a node token no task
// route, and neither opens a signed /files/ URL without its signature.
func TestAuthMatrix(t *testing.T) {
	dir := t.TempDir()
	managed, err := storage.OpenManaged(context.Background(), filepath.Join(dir, "files"), storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{
		NodeID: "m", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true,
		APIKeys: []string{testKey}, NodeTokens: []string{testToken}, Storage: managed,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	wait.Until(t, "a ready leader", 20*time.Second, s.Store().LeaderReady)
	code, body := do(t, "POST", s.URL()+"/tasks", `{"input":"https://example.com/a.mov","kind":"video"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var task api.Task
	if err := json.Unmarshal(body, &task); err != nil {
		t.Fatal(err)
	}
	// A published file, so that a credential that opened /files/ would
	// get 200 rather than 404.
	src := filepath.Join(dir, "out.mp4")
	if err := os.WriteFile(src, []byte("result"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := managed.Put(context.Background(), "tasks/"+task.ID+"/output.mp4", src); err != nil {
		t.Fatal(err)
	}

	// Concrete paths and bodies for the patterns' wildcards.
	target := func(pattern string) (method, path, body string) {
		method, path, _ = strings.Cut(pattern, " ")
		path = strings.NewReplacer("{id}", task.ID, "{name}", "matrix-node").Replace(path)
		if strings.HasPrefix(path, "/internal/steps/") {
			path = strings.Replace(path, task.ID, task.Steps[0].ID, 1)
		}
		if strings.HasSuffix(path, "/files/") {
			path += "tasks/" + task.ID + "/output.mp4"
		}
		if strings.HasSuffix(path, "/assignments") {
			path += "?wait=0s"
		}
		switch pattern {
		case "POST /tasks":
			body = `{"input":"https://example.com/b.mov","kind":"audio"}`
		case "POST /internal/nodes":
			body = `{"name":"matrix-node","slots":1}`
		case "POST /ui/session":
			body = "api_key=" + testKey // signing in takes the key in the form
		default:
			if method == "POST" {
				body = `{}`
			}
		}
		return method, path, body
	}
	creds := []struct {
		name, header string
	}{
		{"no credential", ""},
		{"wrong token", "Bearer not-a-key"},
		{"API key", "Bearer " + testKey},
		{"node token", "Bearer " + testToken},
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	routes := s.API().Routes()
	seen := map[httpapi.Auth]int{}
	for _, r := range routes {
		auth := wantAuth(r.Pattern)
		if auth == "" {
			t.Errorf("route %s is not in the matrix's rules: say which credential it takes in wantAuth", r.Pattern)
			continue
		}
		if r.Auth != auth {
			t.Errorf("route %s is registered with %s, want %s", r.Pattern, r.Auth, auth)
		}
		seen[auth]++
		for _, c := range creds {
			t.Run(r.Pattern+"/"+c.name, func(t *testing.T) {
				method, path, body := target(r.Pattern)
				req, _ := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				if r.Pattern == "POST /ui/session" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if strings.HasSuffix(path, "/ui/assets/") {
					req.URL.Path += "app.js"
				}
				resp, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var e api.Error
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				pass := resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden
				var want bool
				switch auth {
				case httpapi.AuthNone:
					want = true
				case httpapi.AuthAPIKey:
					want = c.name == "API key"
				case httpapi.AuthNodeToken:
					want = c.name == "node token"
				case httpapi.AuthSession:
					// A console page takes a session cookie, no bearer
					// credential: every one is sent to sign in.
					if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/signin?next=") {
						t.Errorf("%s %s with %s: %d, Location %q; want 303 to /ui/signin", method, path, c.name, resp.StatusCode, loc)
					}
					return
				case httpapi.AuthSigned:
					// No bearer credential is a signature: never 2xx.
					if resp.StatusCode < 300 {
						t.Errorf("%s %s with %s: %d; a signed route opened without its signature", method, path, c.name, resp.StatusCode)
					}
					return
				default:
					t.Fatalf("route %s has auth %q, which this test does not know", r.Pattern, auth)
				}
				switch {
				case want && !pass:
					t.Errorf("%s %s with %s: %d %s, want it let through", method, path, c.name, resp.StatusCode, e.Kind)
				case !want && pass:
					t.Errorf("%s %s with %s: %d, want 401", method, path, c.name, resp.StatusCode)
				case !want:
					wantKind := ittybit.ErrTokenInvalid
					if c.header == "" {
						wantKind = ittybit.ErrTokenMissing
					}
					if e.Kind != wantKind || e.Message == "" {
						t.Errorf("%s %s with %s: %d %q %q, want 401 %s with a message", method, path, c.name, resp.StatusCode, e.Kind, e.Message, wantKind)
					}
				}
			})
		}
	}
	// The list is the server's whole surface: task API, agent routes,
	// health, files, metrics.
	if seen[httpapi.AuthAPIKey] < 4 || seen[httpapi.AuthNodeToken] < 8 || seen[httpapi.AuthNone] < 4 || seen[httpapi.AuthSigned] < 1 {
		t.Errorf("routes by credential %v, want at least 4 API-key, 8 node-token, 4 open and 1 signed routes: %+v", seen, routes)
	}
	t.Logf("%d routes × %d credentials", len(routes), len(creds))
}

// TestRateLimitPerKey: one API key over its rate gets 429 rate_limited
// with Retry-After; another key, and node tokens, are not held back by it.
func TestRateLimitPerKey(t *testing.T) {
	dir := t.TempDir()
	const other = "second-api-key"
	s, err := Open(Config{
		NodeID: "r", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true,
		APIKeys: []string{testKey, other}, NodeTokens: []string{testToken}, RateLimit: 2, // burst 4
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	wait.Until(t, "a ready leader", 20*time.Second, s.Store().LeaderReady)
	get := func(token string) *http.Response {
		req, _ := http.NewRequest("GET", s.URL()+"/tasks", nil)
		if strings.HasPrefix(token, "node") || token == testToken {
			req.URL.Path = "/internal/state"
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var limited *http.Response
	ok := 0
	for range 20 {
		if r := get(testKey); r.StatusCode == http.StatusTooManyRequests {
			limited = r
			break
		}
		ok++
	}
	if limited == nil {
		t.Fatal("20 quick requests with one key were never limited")
	}
	if s, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", limited.Header.Get("Retry-After"))
	}
	if ok < 4 {
		t.Errorf("limited after %d requests; the burst is 4", ok)
	}
	if r := get(other); r.StatusCode != http.StatusOK {
		t.Errorf("another key while the first is limited: %d, want 200", r.StatusCode)
	}
	for i := range 10 {
		if r := get(testToken); r.StatusCode != http.StatusOK {
			t.Fatalf("node token request %d while a key is limited: %d, want 200", i, r.StatusCode)
		}
	}
	t.Logf("limited after %d requests (rate 2/s, burst 4)", ok)
}

// wantAuth is the rule, written independently of the server's table, of
// which credential a route takes; "" for a route the rule does not know.
func wantAuth(pattern string) httpapi.Auth {
	_, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasPrefix(path, "/internal/"):
		return httpapi.AuthNodeToken
	case path == "/tasks" || strings.HasPrefix(path, "/tasks/") || path == "/events" || strings.HasPrefix(path, "/events/") ||
		path == "/webhooks" || strings.HasPrefix(path, "/webhooks/") || path == "/fleet" ||
		path == "/projects" || strings.HasPrefix(path, "/projects/") || path == "/keys" || strings.HasPrefix(path, "/keys/") ||
		path == "/connections" || strings.HasPrefix(path, "/connections/"):
		return httpapi.AuthAPIKey
	case path == "/ui/" || path == "/ui/options.json":
		return httpapi.AuthSession
	case path == "/ui" || path == "/ui/assets/" || path == "/ui/signin" || path == "/ui/session":
		// The console's redirect, its static files, its sign-in page, and
		// signing in (with the key in the form) and out.
		return httpapi.AuthNone
	case path == "/files/":
		return httpapi.AuthSigned
	case path == "/healthz" || path == "/readyz" || path == "/openapi.json" || path == "/metrics":
		return httpapi.AuthNone
	}
	return ""
}
