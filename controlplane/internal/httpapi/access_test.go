package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
)

// accessAPI returns an API whose store writes access_ops (as a leader
// does once every voter reports it applies them).
func accessAPI(t *testing.T, edit func(*Config)) *API {
	t.Helper()
	a := mustAPI(t, edit)
	st := a.cfg.Store.(*store.Store)
	st.SetVotersApply(store.LogVersion, st.VotersEpoch())
	return a
}

func decodeAs[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return v
}

func mustProject(t *testing.T, a *API, name string) api.Project {
	t.Helper()
	w := serve(a, "POST", "/projects", `{"name":"`+name+`"}`, withKey)
	if w.Code != 201 {
		t.Fatalf("POST /projects: %d %s", w.Code, w.Body)
	}
	p := decodeAs[api.Project](t, w.Body.Bytes())
	if !strings.HasPrefix(p.ID, "proj_") || p.Name != name || p.Object != "project" {
		t.Fatalf("project %+v", p)
	}
	return p
}

// mustKey makes a key with the request body and returns it with its
// secret, as "Bearer <secret>" in its Secret field.
func mustKey(t *testing.T, a *API, auth, body string) api.Key {
	t.Helper()
	w := serve(a, "POST", "/keys", body, auth)
	if w.Code != 201 {
		t.Fatalf("POST /keys %s: %d %s", body, w.Code, w.Body)
	}
	k := decodeAs[api.Key](t, w.Body.Bytes())
	if !strings.HasPrefix(k.Secret, keyPrefix) || !strings.HasPrefix(k.Secret, k.Prefix) || len(k.Prefix) != len(keyPrefix)+8 {
		t.Fatalf("key %+v: secret and prefix", k)
	}
	k.Secret = "Bearer " + k.Secret
	return k
}

func countKeys(t *testing.T, a *API) int {
	t.Helper()
	w := serve(a, "GET", "/keys", "", withKey)
	if w.Code != 200 {
		t.Fatalf("GET /keys: %d %s", w.Code, w.Body)
	}
	return len(decodeAs[api.List[api.Key]](t, w.Body.Bytes()).Data)
}

func TestProjectKeys(t *testing.T) {
	a := accessAPI(t, func(c *Config) { c.AllowPrivateInputs = true })
	pa, pb := mustProject(t, a, "acme"), mustProject(t, a, "bravo")
	rw := mustKey(t, a, withKey, `{"name":"acme app","project":"`+pa.ID+`"}`)
	if strings.Join(rw.Scopes, ",") != "tasks:read,tasks:write" || rw.Project != pa.ID {
		t.Errorf("default key %+v", rw)
	}
	adminA := mustKey(t, a, withKey, `{"name":"acme ops","project":"`+pa.ID+`","scopes":["admin","tasks:read"]}`)
	if strings.Join(adminA.Scopes, ",") != "tasks:read,admin" {
		t.Errorf("scopes %v, want the contract's order", adminA.Scopes)
	}
	readB := mustKey(t, a, withKey, `{"name":"bravo reader","project":"`+pb.ID+`","scopes":["tasks:read"]}`)
	adminB := mustKey(t, a, withKey, `{"name":"bravo ops","project":"`+pb.ID+`","scopes":["admin","tasks:read","tasks:write"]}`)

	t.Run("bad requests store nothing", func(t *testing.T) {
		before := countKeys(t, a)
		for _, tc := range []struct {
			body string
			kind ittybit.ErrorKind
		}{
			{`{"name":"x","project":"` + pa.ID + `","scopes":["tasks:delete"]}`, "invalid_scope"},
			{`{"name":"x","project":"` + pa.ID + `","scopes":[]}`, "invalid_scope"},
			{`{"name":"x","project":"proj_nope"}`, "unknown_project"},
			{`{"name":"x"}`, "invalid_option"},
			{`{"project":"` + pa.ID + `"}`, "invalid_option"},
			{`{"name":"` + strings.Repeat("n", 101) + `","project":"` + pa.ID + `"}`, "invalid_option"},
			{`{"name":"x","project":"` + pa.ID + `","rate_limit":-1}`, "invalid_option"},
			{`{"name":"x","project":"` + pa.ID + `","max_everything":1}`, "invalid_json"},
			{`{"name":"x","project":"` + pa.ID + `","priority":"urgent"}`, "invalid_option"},
		} {
			e := wantError(t, serve(a, "POST", "/keys", tc.body, withKey), 400, tc.kind)
			if !strings.Contains(e.Message, "accepted") {
				t.Errorf("%s: message %q does not say what is accepted", tc.body, e.Message)
			}
		}
		wantError(t, serve(a, "POST", "/projects", `{"name":""}`, withKey), 400, "invalid_option")
		wantError(t, serve(a, "POST", "/projects", `{"name":"a\u0007"}`, withKey), 400, "invalid_option")
		wantError(t, serve(a, "POST", "/projects", `{"name":"heavy","weight":0}`, withKey), 400, "invalid_option")
		wantError(t, serve(a, "POST", "/projects", `{"name":"heavy","weight":101}`, withKey), 400, "invalid_option")
		if after := countKeys(t, a); after != before {
			t.Errorf("%d keys after bad requests, %d before", after, before)
		}
	})

	t.Run("scopes", func(t *testing.T) {
		wantError(t, serve(a, "POST", "/keys", `{"name":"x"}`, rw.Secret), 403, "forbidden")
		wantError(t, serve(a, "GET", "/keys", "", rw.Secret), 403, "forbidden")
		wantError(t, serve(a, "GET", "/webhooks", "", rw.Secret), 403, "forbidden")
		wantError(t, serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/a.png"}`, readB.Secret), 403, "forbidden")
		// Routes of the whole cluster: an operator's key only, whatever
		// the scopes.
		wantError(t, serve(a, "GET", "/fleet", "", adminA.Secret), 403, "forbidden")
		wantError(t, serve(a, "POST", "/projects", `{"name":"mine"}`, adminA.Secret), 403, "forbidden")
		// A project's admin makes keys of its own project only.
		wantError(t, serve(a, "POST", "/keys", `{"name":"x","project":"`+pb.ID+`"}`, adminA.Secret), 403, "forbidden")
		own := mustKey(t, a, adminA.Secret, `{"name":"acme worker"}`)
		if own.Project != pa.ID {
			t.Errorf("a project admin's key went to %q, want %q", own.Project, pa.ID)
		}
	})

	t.Run("a project sees only its own", func(t *testing.T) {
		w := serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/a.png"}`, rw.Secret)
		if w.Code != 201 {
			t.Fatalf("POST /tasks: %d %s", w.Code, w.Body)
		}
		task := decodeAs[api.Task](t, w.Body.Bytes())
		if task.Project != pa.ID {
			t.Errorf("task project %q, want %q", task.Project, pa.ID)
		}
		opTask := decodeAs[api.Task](t, serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/b.png"}`, withKey).Body.Bytes())
		if opTask.Project != "" {
			t.Errorf("an operator's task has project %q", opTask.Project)
		}
		for _, r := range []struct{ method, path string }{
			{"GET", "/tasks/" + task.ID}, {"POST", "/tasks/" + task.ID + "/cancel"},
			{"GET", "/tasks/" + opTask.ID}, {"POST", "/tasks/" + opTask.ID + "/cancel"},
		} {
			e := wantError(t, serve(a, r.method, r.path, "", adminB.Secret), 404, "not_found")
			if !strings.Contains(e.Message, "no task") {
				t.Errorf("%s %s: %q, want the message of an absent task", r.method, r.path, e.Message)
			}
		}
		list := func(auth, query string) []string {
			w := serve(a, "GET", "/tasks"+query, "", auth)
			if w.Code != 200 {
				t.Fatalf("GET /tasks%s: %d %s", query, w.Code, w.Body)
			}
			var ids []string
			for _, t := range decodeAs[api.TaskList](t, w.Body.Bytes()).Data {
				ids = append(ids, t.ID)
			}
			return ids
		}
		if got := list(readB.Secret, ""); len(got) != 0 {
			t.Errorf("project B lists %v", got)
		}
		if got := list(rw.Secret, ""); len(got) != 1 || got[0] != task.ID {
			t.Errorf("project A lists %v, want [%s]", got, task.ID)
		}
		if got := list(withKey, ""); len(got) != 2 {
			t.Errorf("the operator lists %v, want both tasks", got)
		}
		// A cursor of another project's task names no task.
		wantError(t, serve(a, "GET", "/tasks?after="+task.ID, "", readB.Secret), 400, "invalid_option")
		wantError(t, serve(a, "GET", "/tasks?after="+opTask.ID, "", rw.Secret), 400, "invalid_option")
		events := func(auth string) map[string]bool {
			w := serve(a, "GET", "/events?limit=100", "", auth)
			seen := map[string]bool{}
			for _, e := range decodeAs[api.List[api.Event]](t, w.Body.Bytes()).Data {
				seen[e.Data.ID] = true
			}
			return seen
		}
		if got := events(readB.Secret); len(got) != 0 {
			t.Errorf("project B's events: %v", got)
		}
		if got := events(rw.Secret); !got[task.ID] || got[opTask.ID] {
			t.Errorf("project A's events: %v", got)
		}
		if got := events(withKey); !got[task.ID] || !got[opTask.ID] {
			t.Errorf("the operator's events: %v", got)
		}

		// Keys and webhook endpoints too.
		wantError(t, serve(a, "GET", "/keys/"+readB.ID, "", adminA.Secret), 404, "not_found")
		wantError(t, serve(a, "DELETE", "/keys/"+readB.ID, "", adminA.Secret), 404, "not_found")
		wantError(t, serve(a, "GET", "/projects/"+pb.ID, "", adminA.Secret), 404, "not_found")
		if w := serve(a, "GET", "/keys", "", adminA.Secret); strings.Contains(w.Body.String(), pb.ID) {
			t.Errorf("project A lists B's keys: %s", w.Body)
		}
		w = serve(a, "POST", "/webhooks", `{"url":"http://127.0.0.1:9/hook","events":["*"]}`, adminA.Secret)
		if w.Code != 201 {
			t.Fatalf("POST /webhooks: %d %s", w.Code, w.Body)
		}
		wh := decodeAs[api.Webhook](t, w.Body.Bytes())
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/webhooks/" + wh.ID, ""}, {"PATCH", "/webhooks/" + wh.ID, `{"description":"mine"}`},
			{"DELETE", "/webhooks/" + wh.ID, ""}, {"POST", "/webhooks/" + wh.ID + "/rotate", ""},
			{"POST", "/webhooks/" + wh.ID + "/test", ""}, {"GET", "/webhooks/" + wh.ID + "/deliveries", ""},
		} {
			wantError(t, serve(a, r.method, r.path, r.body, adminB.Secret), 404, "not_found")
		}
		if w := serve(a, "GET", "/webhooks", "", adminB.Secret); strings.Contains(w.Body.String(), wh.ID) {
			t.Errorf("project B lists A's endpoint: %s", w.Body)
		}
		if w := serve(a, "GET", "/webhooks/"+wh.ID, "", withKey); w.Code != 200 {
			t.Errorf("the operator reads A's endpoint: %d %s", w.Code, w.Body)
		}
		// A's endpoint is queued A's events only.
		opTask2 := decodeAs[api.Task](t, serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/c.png"}`, withKey).Body.Bytes())
		if w := serve(a, "POST", "/tasks/"+task.ID+"/cancel", "", rw.Secret); w.Code != 200 {
			t.Errorf("project A cancels its own task: %d %s", w.Code, w.Body)
		}
		own := false
		for _, d := range a.cfg.Store.State().Deliveries(wh.ID, 100) {
			own = own || d.TaskID == task.ID
			if d.TaskID == opTask2.ID {
				t.Errorf("project A's endpoint got a delivery of the operator's task: %+v", d)
			}
		}
		if !own {
			t.Errorf("project A's endpoint got no delivery of A's cancelled task")
		}
	})

	t.Run("revoked", func(t *testing.T) {
		k := mustKey(t, a, withKey, `{"name":"short-lived","project":"`+pa.ID+`"}`)
		if w := serve(a, "GET", "/tasks", "", k.Secret); w.Code != 200 {
			t.Fatalf("before revocation: %d %s", w.Code, w.Body)
		}
		wantError(t, serve(a, "DELETE", "/keys/"+k.ID, "", adminB.Secret), 404, "not_found")
		if w := serve(a, "DELETE", "/keys/"+k.ID, "", adminA.Secret); w.Code != 200 {
			t.Fatalf("DELETE /keys/%s: %d %s", k.ID, w.Code, w.Body)
		}
		wantError(t, serve(a, "GET", "/tasks", "", k.Secret), 401, "token_invalid")
		wantError(t, serve(a, "GET", "/keys/"+k.ID, "", withKey), 404, "not_found")
		wantError(t, serve(a, "DELETE", "/keys/"+k.ID, "", withKey), 404, "not_found")
	})

	t.Run("priorities", func(t *testing.T) {
		hi := mustKey(t, a, withKey, `{"name":"urgent","project":"`+pa.ID+`","priority":"high"}`)
		if hi.Priority != "high" || rw.Priority != "normal" {
			t.Errorf("key priorities %q, %q", hi.Priority, rw.Priority)
		}
		for _, tc := range []struct{ auth, body, want string }{
			{hi.Secret, `{"kind":"image","input":"https://example.com/a.png"}`, "high"},
			{hi.Secret, `{"kind":"image","input":"https://example.com/a.png","priority":"low"}`, "low"},
			{rw.Secret, `{"kind":"image","input":"https://example.com/a.png"}`, ""},
			{withKey, `{"kind":"image","input":"https://example.com/a.png","priority":"high"}`, "high"},
		} {
			w := serve(a, "POST", "/tasks", tc.body, tc.auth)
			if task := decodeAs[api.Task](t, w.Body.Bytes()); w.Code != 201 || task.Priority != tc.want {
				t.Errorf("%s: %d, priority %q, want %q", tc.body, w.Code, task.Priority, tc.want)
			}
		}
		p := decodeAs[api.Project](t, serve(a, "POST", "/projects", `{"name":"heavy","weight":5}`, withKey).Body.Bytes())
		if p.Weight != 5 || pa.Weight != 1 {
			t.Errorf("weights %d, %d", p.Weight, pa.Weight)
		}
	})

	t.Run("a key's own rate limit", func(t *testing.T) {
		k := mustKey(t, a, withKey, `{"name":"slow","project":"`+pa.ID+`","rate_limit":1}`)
		codes := []int{}
		for range 4 {
			codes = append(codes, serve(a, "GET", "/tasks", "", k.Secret).Code)
		}
		if codes[0] != 200 || codes[3] != 429 {
			t.Errorf("codes %v: want 200 first (burst 2), 429 by the fourth", codes)
		}
		if w := serve(a, "GET", "/tasks", "", rw.Secret); w.Code != 200 {
			t.Errorf("another key is not limited by it: %d", w.Code)
		}
	})
}
