package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/seal"
	"github.com/ittybit-oss/ittybit/storage/s3test"
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

// TestConnections runs a project's S3 connections on three servers and
// two agents, with two S3 servers (versitygw), each its own identity: the
// fleet's (the agents' environment) and another that only a connection
// holds. A project's task writes to the other server's bucket through its
// connection; a bucket without one is refused at submission
// (connection_required); credentials that cannot write are refused when
// the connection is made (connection_failed, with the S3 error code);
// once the provider rotates the keys, the next task fails cleanly
// (upload_failed, the code named, no secret in the message), and a PATCH
// with the new keys mends it; the secret in clear is found nowhere under
// the servers' and agents' folders and logs, nor in /metrics.
func TestConnections(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "seal.keys")
	sealKey, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("# the cluster's seal key\n"+sealKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := mustFleetWith(t, map[string]string{"clip.mov": clips.Path(t, encoderstest.SmallHD)}, []string{"--seal-key-file", keyFile})
	other := s3test.Start(t) // the second identity: no process has it in its environment
	other.MakeBucket(t, "bucket2")
	secrets := []string{other.SecretKey}

	decode := func(r reply, v any) {
		t.Helper()
		if err := json.Unmarshal(r.Body, v); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	base := f.servers[1].URL()
	// projectKey makes a project and a key of it with every scope.
	projectKey := func(name string) api.Key {
		t.Helper()
		r := mustSend(t, "POST", base+"/projects", []byte(`{"name":"`+name+`"}`))
		var p api.Project
		decode(r, &p)
		r = mustSend(t, "POST", base+"/keys", []byte(`{"name":"`+name+` app","project":"`+p.ID+`","scopes":["tasks:read","tasks:write","admin"]}`))
		var k api.Key
		decode(r, &k)
		return k
	}
	k := projectKey("pressroom")
	auth := "Bearer " + k.Secret
	connBody := func(bucket, endpoint, keyID, secret string) []byte {
		b, _ := json.Marshal(map[string]any{"name": bucket, "kind": "s3", "bucket": bucket, "endpoint": endpoint,
			"region": "us-east-1", "path_style": true, "access_key_id": keyID, "secret_access_key": secret})
		return b
	}

	t.Run("credentials that cannot write are refused", func(t *testing.T) {
		wrong := "wrong-" + other.SecretKey
		secrets = append(secrets, wrong)
		got := mustSend(t, "POST", f.servers[2].URL()+"/connections", connBody("bucket2", other.Endpoint, other.AccessKey, wrong), "Authorization", auth)
		checkError(t, got, http.StatusBadRequest, "connection_failed")
		if e := got.apiError(t); !strings.Contains(e.Message, "S3 error code ") || strings.Contains(e.Message, wrong) {
			t.Errorf("message %q: want the S3 error code and no secret", e.Message)
		}
		if l := mustSend(t, "GET", base+"/connections", nil, "Authorization", auth); strings.Contains(string(l.Body), "conn_") {
			t.Errorf("a refused connection was stored: %s", l)
		}
	})

	r := mustSend(t, "POST", f.servers[2].URL()+"/connections", connBody("bucket2", other.Endpoint, other.AccessKey, other.SecretKey), "Authorization", auth)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /connections: %s", r)
	}
	var conn api.Connection
	decode(r, &conn)
	if strings.Contains(string(r.Body), other.SecretKey) || strings.Contains(string(r.Body), "secret") {
		t.Errorf("the answer shows the secret: %s", r)
	}
	task := func(output string) api.Task {
		t.Helper()
		body := fmt.Sprintf(`{"kind":"image","input":%q,"output":%q,"options":{"start":1,"width":160}}`, f.files.URL+"/clip.mov", output)
		return mustCreate(t, f.servers[0].URL(), body, "Authorization", auth)
	}
	wait := func(id string) *api.Task {
		t.Helper()
		return waitTask(t, client.New(base, k.Secret), id, 2*time.Minute)
	}

	t.Run("a bucket without a connection is refused", func(t *testing.T) {
		got := mustSend(t, "POST", base+"/tasks", []byte(`{"kind":"image","input":"`+f.files.URL+`/clip.mov","output":"s3://outputs/x.jpg"}`), "Authorization", auth)
		checkError(t, got, http.StatusBadRequest, "connection_required")
		if e := got.apiError(t); !strings.Contains(e.Message, "outputs") {
			t.Errorf("message %q does not name the bucket", e.Message)
		}
		// The operator's key uses the fleet's identity, as before.
		if got := mustSend(t, "POST", base+"/tasks", []byte(`{"kind":"image","input":"`+f.files.URL+`/clip.mov","output":"s3://outputs/op.jpg"}`)); got.Status != http.StatusCreated {
			t.Errorf("the operator's task: %s", got)
		}
	})

	t.Run("the task writes through its connection", func(t *testing.T) {
		done := wait(task("s3://bucket2/pressroom/first.jpg").ID)
		if done.Status != api.TaskCompleted {
			t.Fatalf("task %s: %s %+v", done.ID, done.Status, done.Error)
		}
		if _, err := other.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("bucket2"), Key: aws.String("pressroom/first.jpg")}); err != nil {
			t.Errorf("the result is not in bucket2: %v", err)
		}
	})

	t.Run("another project sees none of it", func(t *testing.T) {
		rival := "Bearer " + projectKey("rival").Secret
		// A result in managed storage: a signed URL, which only its
		// project's key is ever shown.
		done := wait(mustCreate(t, base, `{"kind":"image","input":"`+f.files.URL+`/clip.mov","options":{"start":1,"width":160}}`, "Authorization", auth).ID)
		if done.Status != api.TaskCompleted || done.Output == nil {
			t.Fatalf("task %s: %s %+v", done.ID, done.Status, done.Error)
		}
		for _, p := range f.servers {
			for _, r := range []struct{ method, path string }{
				{"GET", "/tasks/" + done.ID}, {"POST", "/tasks/" + done.ID + "/cancel"},
				{"GET", "/connections/" + conn.ID}, {"PATCH", "/connections/" + conn.ID}, {"DELETE", "/connections/" + conn.ID},
			} {
				checkError(t, mustSend(t, r.method, p.URL()+r.path, []byte(`{}`), "Authorization", rival), http.StatusNotFound, "not_found")
			}
			for _, path := range []string{"/tasks?limit=100", "/events?limit=100", "/connections"} {
				if got := mustSend(t, "GET", p.URL()+path, nil, "Authorization", rival); strings.Contains(string(got.Body), done.ID) || strings.Contains(string(got.Body), conn.ID) {
					t.Errorf("GET %s via %s shows the other project's: %s", path, p.name, got)
				}
			}
		}
		// The file itself: its path with the signature changed, or
		// without one, is refused, with any key.
		u, err := url.Parse(*done.Output)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.SplitN(strings.TrimPrefix(u.Path, "/files/"), "/", 3) // <sig>/<exp>/<key>
		if len(parts) != 3 {
			t.Fatalf("output %s is not a signed /files/ URL", *done.Output)
		}
		for _, path := range []string{"/files/" + strings.Repeat("0", len(parts[0])) + "/" + parts[1] + "/" + parts[2], "/files/" + parts[2]} {
			got := mustSend(t, "GET", base+path, nil, "Authorization", rival)
			if got.Status == http.StatusOK {
				t.Errorf("GET %s with another project's key: 200", path)
			}
		}
	})

	t.Run("rotated at the provider, then mended", func(t *testing.T) {
		newKey, newSecret := "rotated-"+other.AccessKey, "rotated-"+other.SecretKey
		secrets = append(secrets, newSecret)
		other.Restart(t, newKey, newSecret)
		failed := wait(task("s3://bucket2/pressroom/second.jpg").ID)
		if failed.Status != api.TaskFailed || failed.Error == nil || failed.Error.Kind != "upload_failed" {
			t.Fatalf("task %s after the rotation: %s %+v, want failed upload_failed", failed.ID, failed.Status, failed.Error)
		}
		for _, s := range secrets {
			if strings.Contains(failed.Error.Message, s) {
				t.Errorf("the error names a secret: %s", failed.Error.Message)
			}
		}
		if !regexp.MustCompile(`InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|XAdminUserNotFound|[A-Z][a-zA-Z]+NotFound`).MatchString(failed.Error.Message) {
			t.Errorf("the error does not name the S3 error code: %s", failed.Error.Message)
		}
		got := mustSend(t, "PATCH", f.servers[0].URL()+"/connections/"+conn.ID, []byte(`{"access_key_id":"`+newKey+`","secret_access_key":"`+newSecret+`"}`), "Authorization", auth)
		if got.Status != http.StatusOK {
			t.Fatalf("PATCH /connections/%s: %s", conn.ID, got)
		}
		if done := wait(task("s3://bucket2/pressroom/third.jpg").ID); done.Status != api.TaskCompleted {
			t.Fatalf("task %s after the PATCH: %s %+v", done.ID, done.Status, done.Error)
		}
	})

	t.Run("no secret in clear anywhere", func(t *testing.T) {
		var dirs []string
		holders := 0
		for _, p := range append(append([]*proc{}, f.servers...), f.agents...) {
			dirs = append(dirs, p.dir)
		}
		for _, d := range dirs {
			err := filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return nil // gone meanwhile
				}
				for _, s := range secrets {
					if bytes.Contains(data, []byte(s)) {
						t.Errorf("%s holds a connection's secret in clear", path)
					}
				}
				if bytes.Contains(data, []byte(conn.ID)) {
					holders++ // the connection itself is there, sealed
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if holders < len(f.servers) {
			t.Errorf("only %d files name connection %s: the walk missed the servers' logs", holders, conn.ID)
		}
		for _, p := range f.servers {
			m := mustSend(t, "GET", p.URL()+"/metrics", nil)
			for _, s := range secrets {
				if strings.Contains(string(m.Body), s) {
					t.Errorf("%s's /metrics holds a connection's secret", p.name)
				}
			}
		}
	})
}
