package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/storage"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

// canary is a loopback HTTP server that counts the requests it gets: the
// target an SSRF would reach.
func canary(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "canary secret")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestSSRFSubmission sends inputs at loopback, private, link-local,
// metadata and unspecified addresses, in every notation, to an `ittybit
// server` with the default policy: each is refused at submission with 400
// invalid_input, nothing is stored, and the loopback target sees no
// request. An s3:// input (read with the operator's S3 settings, not from
// the user's URL) is accepted.
func TestSSRFSubmission(t *testing.T) {
	t.Parallel()
	target, hits := canary(t)
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	p := mustServer(t, "ssrf", "--bootstrap")
	mustReady(t, p)
	inputs := []string{
		"http://127.0.0.1:" + port + "/a.mov",
		"https://127.0.0.1:" + port + "/a.mov",
		"http://127.0.0.1.:" + port + "/a.mov",
		"http://127.8.9.10:" + port + "/a.mov",
		"http://localhost:" + port + "/a.mov",
		"http://LOCALHOST.:" + port + "/a.mov",
		"http://media.localhost:" + port + "/a.mov",
		"http://[::1]:" + port + "/a.mov",
		"http://[::]:" + port + "/a.mov",
		"http://0.0.0.0:" + port + "/a.mov",
		"http://0:" + port + "/a.mov",
		"http://10.0.0.1/a.mov",
		"http://10.255.255.254/a.mov",
		"http://172.16.0.1/a.mov",
		"http://172.31.255.254/a.mov",
		"http://192.168.0.1/a.mov",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://169.254.169.254./latest/meta-data/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://100.100.100.200/latest/meta-data/",
		"http://[fe80::1%25eth0]/a.mov",
		"http://[fc00::1]/a.mov",
		"http://100.64.0.1/a.mov",
		"http://[::ffff:127.0.0.1]:" + port + "/a.mov",
		"http://[::ffff:7f00:1]:" + port + "/a.mov",
		"http://[::ffff:169.254.169.254]/latest/",
		"http://[::ffff:10.0.0.1]/a.mov",
		"http://[64:ff9b::a9fe:a9fe]/latest/",  // NAT64 of the metadata address
		"http://2130706433:" + port + "/a.mov", // decimal
		"http://0177.0.0.1:" + port + "/a.mov", // octal
		"http://0x7f000001:" + port + "/a.mov", // hex
		"http://0x7f.1:" + port + "/a.mov",
		"http://127.1:" + port + "/a.mov",
		"http://017700000001:" + port + "/a.mov",
		"http://0xa9fea9fe/latest/meta-data/",
		"http://2852039166/latest/meta-data/", // 169.254.169.254 in decimal
		"http://user:pass@127.0.0.1:" + port + "/a.mov",
		"http://example.com@127.0.0.1:" + port + "/a.mov",
		"http://１２７.０.０.１:" + port + "/a.mov", // full-width digits and dots
	}
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			r := mustSend(t, "POST", p.URL()+"/tasks", []byte(fmt.Sprintf(`{"input":%q,"kind":"video"}`, in)))
			checkError(t, r, http.StatusBadRequest, ittybit.ErrInvalidInput)
		})
	}
	if s, err := getState(p); err != nil || s.Tasks != 0 {
		t.Errorf("tasks stored: %d (%v), want 0", s.Tasks, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback target saw %d requests", n)
	}
	// s3:// is read with the operator's endpoint and credentials: the URL
	// names a bucket, not a host.
	mustCreate(t, p.URL(), `{"input":"s3://media/uploads/a.mov","kind":"video"}`)
}

// TestSSRFAtFetch: a server that accepts private inputs (an operator's
// choice) with an agent that does not. Inputs on loopback, in every
// notation the server lets through, fail the probe step with input_blocked
// when the agent connects, once, and the target sees no request. The agent
// then completes a task from s3://: the operator's S3 endpoint, on
// loopback here, is not a user URL and is not refused.
func TestSSRFAtFetch(t *testing.T) {
	t.Parallel()
	target, hits := canary(t)
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	s3 := s3test.Start(t)
	s3.MakeBucket(t, "managed")
	s3.MakeBucket(t, "inputs")
	env := s3Env(s3)
	srv := &proc{name: "server", dir: t.TempDir(), env: env}
	srv.args = []string{"server", "--node-id", "server", "--data", srv.DataDir(), "--bootstrap", "--allow-private-inputs", "--storage", "s3://managed/ssrf"}
	srv.mustStart(t)
	mustReady(t, srv)
	ag := &proc{name: "agent", dir: t.TempDir(), env: env}
	ag.args = []string{"agent", "--name", "agent", "--work-dir", filepath.Join(ag.dir, "work"), "--storage", "s3://managed/ssrf", "--server", srv.URL()}
	ag.mustStart(t)

	users := client.New(srv.URL(), testAPIKey)
	inputs := []string{
		"http://127.0.0.1:" + port + "/a.mov",
		"http://127.0.0.1.:" + port + "/a.mov",
		"http://localhost:" + port + "/a.mov",
		"http://[::1]:" + port + "/a.mov",
		"http://0.0.0.0:" + port + "/a.mov",
		"http://[::ffff:127.0.0.1]:" + port + "/a.mov",
		"http://2130706433:" + port + "/a.mov",
		"http://0177.0.0.1:" + port + "/a.mov",
		"http://127.1:" + port + "/a.mov",
	}
	ids := make([]string, len(inputs))
	for i, in := range inputs {
		task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindVideo, Input: in}, client.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", in, err)
		}
		ids[i] = task.ID
	}
	for i, in := range inputs {
		t.Run(in, func(t *testing.T) {
			task := waitTask(t, users, ids[i], time.Minute)
			if task.Status != api.TaskFailed || task.Error == nil || task.Error.Kind != ittybit.ErrInputBlocked {
				t.Fatalf("task %s %+v, want failed with input_blocked", task.Status, task.Error)
			}
			if a := task.Steps[0].Attempt; a != 1 {
				t.Errorf("probe step attempts %d, want 1 (input_blocked is final)", a)
			}
			if strings.Contains(task.Error.Message, "canary") {
				t.Errorf("the error carries the target's answer: %s", task.Error.Message)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback target saw %d requests", n)
	}

	cl, err := storage.NewS3(context.Background(), s3.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Upload(context.Background(), clips.Path(t, encoderstest.Silent), "s3://inputs/clip.mp4"); err != nil {
		t.Fatal(err)
	}
	good, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindImage, Input: "s3://inputs/clip.mp4"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if task := waitTask(t, users, good.ID, 2*time.Minute); task.Status != api.TaskCompleted {
		t.Errorf("the s3:// task after them: %s %+v", task.Status, task.Error)
	}
}

// s3Env is the environment of processes that use the test S3 server.
func s3Env(s3 *s3test.Server) []string {
	return append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey, "ITTYBIT_NODE_TOKEN="+testNodeToken,
		"AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_S3="+s3.Config().Endpoint, "ITTYBIT_S3_PATH_STYLE=true")
}

// waitTask polls a task until it ends.
func waitTask(t *testing.T, c *client.Client, id string, timeout time.Duration) *api.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	task, err := c.Wait(ctx, id, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return task
}
