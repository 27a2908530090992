package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// TestProjectIsolation runs projects and their keys on three `ittybit
// server` processes: a key made through one server works through the
// others at once; a project's key never sees, lists, cancels or follows
// another project's tasks, events, keys or webhook endpoints, through any
// server (404, as if absent); a revoked key is refused by every server,
// and how long after the DELETE's answer each refused it is logged.
func TestProjectIsolation(t *testing.T) {
	t.Parallel()
	nodes := mustCluster(t, "--allow-private-inputs")
	node := func(i int) *proc { return nodes[i%len(nodes)] }

	decode := func(r reply, v any) {
		t.Helper()
		if err := json.Unmarshal(r.Body, v); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	project := func(i int, name string) api.Project {
		t.Helper()
		r := mustSend(t, "POST", node(i).URL()+"/projects", []byte(`{"name":"`+name+`"}`))
		if r.Status != http.StatusCreated {
			t.Fatalf("POST /projects via %s: %s", node(i).name, r)
		}
		var p api.Project
		decode(r, &p)
		return p
	}
	key := func(i int, body string) (api.Key, string) {
		t.Helper()
		r := mustSend(t, "POST", node(i).URL()+"/keys", []byte(body))
		if r.Status != http.StatusCreated {
			t.Fatalf("POST /keys %s via %s: %s", body, node(i).name, r)
		}
		var k api.Key
		decode(r, &k)
		return k, "Bearer " + k.Secret
	}
	pa, pb := project(0, "acme"), project(1, "bravo")
	// Each key made through one server and used at once through the next:
	// a follower that does not know it yet catches up with the leader.
	_, keyA := key(1, `{"name":"acme app","project":"`+pa.ID+`","scopes":["tasks:read","tasks:write","admin"]}`)
	_, keyB := key(2, `{"name":"bravo app","project":"`+pb.ID+`","scopes":["tasks:read","tasks:write","admin"]}`)

	var tasksA []api.Task
	for i := range 3 {
		tasksA = append(tasksA, mustCreate(t, node(i+2).URL(), fmt.Sprintf(`{"kind":"image","input":"https://example.com/%d.png"}`, i), "Authorization", keyA))
		if tasksA[i].Project != pa.ID {
			t.Fatalf("task %s of project %q, want %q", tasksA[i].ID, tasksA[i].Project, pa.ID)
		}
	}
	taskB := mustCreate(t, node(0).URL(), `{"kind":"image","input":"https://example.com/b.png"}`, "Authorization", keyB)
	hook := mustSend(t, "POST", node(1).URL()+"/webhooks", []byte(`{"url":"http://127.0.0.1:9/hook","events":["*"]}`), "Authorization", keyA)
	if hook.Status != http.StatusCreated {
		t.Fatalf("POST /webhooks: %s", hook)
	}
	var wh api.Webhook
	decode(hook, &wh)
	keysA := mustSend(t, "GET", node(0).URL()+"/keys", nil, "Authorization", keyA)
	var ka api.List[api.Key]
	decode(keysA, &ka)

	t.Run("B sees nothing of A through any server", func(t *testing.T) {
		for _, p := range nodes {
			for _, task := range tasksA {
				for _, r := range []struct{ method, path string }{
					{"GET", "/tasks/" + task.ID}, {"POST", "/tasks/" + task.ID + "/cancel"},
					{"GET", "/events?task=" + task.ID},
				} {
					got := mustSend(t, r.method, p.URL()+r.path, nil, "Authorization", keyB)
					if r.path == "/events?task="+task.ID {
						if got.Status != http.StatusOK || strings.Contains(string(got.Body), task.ID) {
							t.Errorf("%s %s via %s: %s", r.method, r.path, p.name, got)
						}
						continue
					}
					checkError(t, got, http.StatusNotFound, "not_found")
				}
			}
			for _, path := range []string{"/tasks", "/tasks?archived=true", "/events?limit=100", "/webhooks", "/keys", "/projects"} {
				got := mustSend(t, "GET", p.URL()+path, nil, "Authorization", keyB)
				if got.Status != http.StatusOK {
					t.Errorf("GET %s via %s: %s", path, p.name, got)
				}
				for _, id := range []string{tasksA[0].ID, tasksA[1].ID, tasksA[2].ID, wh.ID, pa.ID} {
					if strings.Contains(string(got.Body), id) {
						t.Errorf("GET %s via %s shows %s of project A: %s", path, p.name, id, got)
					}
				}
			}
			for _, r := range []struct{ method, path string }{
				{"GET", "/webhooks/" + wh.ID}, {"DELETE", "/webhooks/" + wh.ID}, {"POST", "/webhooks/" + wh.ID + "/test"},
				{"GET", "/keys/" + ka.Data[0].ID}, {"DELETE", "/keys/" + ka.Data[0].ID}, {"GET", "/projects/" + pa.ID},
			} {
				checkError(t, mustSend(t, r.method, p.URL()+r.path, nil, "Authorization", keyB), http.StatusNotFound, "not_found")
			}
			checkError(t, mustSend(t, "GET", p.URL()+"/fleet", nil, "Authorization", keyB), http.StatusForbidden, "forbidden")
			// The operator's key sees both projects.
			got := mustSend(t, "GET", p.URL()+"/tasks/"+taskB.ID, nil)
			if got.Status != http.StatusOK {
				t.Errorf("the operator's GET /tasks/%s via %s: %s", taskB.ID, p.name, got)
			}
		}
		got := mustSend(t, "GET", node(2).URL()+"/tasks?limit=100", nil, "Authorization", keyA)
		var l api.TaskList
		decode(got, &l)
		if len(l.Data) != len(tasksA) {
			t.Errorf("project A lists %d tasks, want %d", len(l.Data), len(tasksA))
		}
	})

	t.Run("a revoked key is refused by every server", func(t *testing.T) {
		k, secret := key(0, `{"name":"short-lived","project":"`+pa.ID+`"}`)
		for _, p := range nodes {
			if r := mustSend(t, "GET", p.URL()+"/events?limit=1", nil, "Authorization", secret); r.Status != http.StatusOK {
				t.Fatalf("before revocation via %s: %s", p.name, r)
			}
		}
		r := mustSend(t, "DELETE", node(1).URL()+"/keys/"+k.ID, nil, "Authorization", keyA)
		answered := time.Now()
		if r.Status != http.StatusOK {
			t.Fatalf("DELETE /keys/%s: %s", k.ID, r)
		}
		// GET /events is answered by each server from its own copy of
		// the log: the strictest route to measure.
		for _, p := range nodes {
			for {
				got := mustSend(t, "GET", p.URL()+"/events?limit=1", nil, "Authorization", secret)
				if got.Status == http.StatusUnauthorized {
					t.Logf("%s refused the revoked key %v after the DELETE's answer", p.name, time.Since(answered).Round(100*time.Microsecond))
					break
				}
				if time.Since(answered) > 10*time.Second {
					t.Fatalf("%s still admits the revoked key 10 s after its revocation: %s", p.name, got)
				}
				time.Sleep(time.Millisecond)
			}
			for _, path := range []string{"/tasks", "/tasks/" + tasksA[0].ID} {
				checkError(t, mustSend(t, "GET", p.URL()+path, nil, "Authorization", secret), http.StatusUnauthorized, "token_invalid")
			}
		}
	})
	t.Run("keys from the shell", func(t *testing.T) {
		env := append(os.Environ(), "ITTYBIT_API_URL="+node(1).URL(), "ITTYBIT_API_KEY="+testAPIKey)
		var p api.Project
		if err := json.Unmarshal([]byte(mustRun(t, "", env, ittybitBin, "projects", "create", "charlie")), &p); err != nil || p.Name != "charlie" {
			t.Fatalf("projects create: %+v %v", p, err)
		}
		var k api.Key
		out := mustRun(t, "", env, ittybitBin, "keys", "create", "charlie ci", "--project", p.ID, "--scopes", "tasks:read", "--rate-limit", "5")
		if err := json.Unmarshal([]byte(out), &k); err != nil || k.Secret == "" || k.RateLimit != 5 || strings.Join(k.Scopes, ",") != "tasks:read" {
			t.Fatalf("keys create: %s", out)
		}
		if list := mustRun(t, "", env, ittybitBin, "keys", "list", "--project", p.ID); !strings.Contains(list, k.ID) || strings.Contains(list, k.Secret) {
			t.Errorf("keys list: %s", list)
		}
		// The new key, from the shell, through another server.
		keyEnv := append(os.Environ(), "ITTYBIT_API_URL="+node(2).URL(), "ITTYBIT_API_KEY="+k.Secret)
		mustRun(t, "", keyEnv, ittybitBin, "tasks", "list")
		cmd := exec.Command(ittybitBin, "keys", "create", "x", "--project", p.ID, "--scopes", "tasks:read,tasks:delete")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid_scope") {
			t.Errorf("an unknown scope from the shell: %v %s", err, out)
		}
		mustRun(t, "", env, ittybitBin, "keys", "revoke", k.ID)
		cmd = exec.Command(ittybitBin, "tasks", "list")
		cmd.Env = keyEnv
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "token_invalid") {
			t.Errorf("a revoked key from the shell: %v %s", err, out)
		}
	})
	waitSameState(t, 20*time.Second, nodes...)
}
