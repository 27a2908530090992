package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

const (
	testKey   = "test-api-key"
	testToken = "test-node-token"
)

func mustServer(t *testing.T, dir, id string, bootstrap bool, join ...string) *Server {
	t.Helper()
	s, err := Open(Config{
		NodeID: id, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, id),
		Bootstrap: bootstrap, Join: join, APIKeys: []string{testKey}, NodeTokens: []string{testToken}, JoinToken: testToken,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	return s
}

// mustThree starts a three-server cluster with its data in dir: a
// bootstraps and leads, b and c join through it. Each is closed when the
// test ends.
func mustThree(t *testing.T, dir string) (a, b, c *Server) {
	t.Helper()
	a = mustServer(t, dir, "a", true)
	t.Cleanup(func() { a.Close() })
	wait.Until(t, "a to lead", 20*time.Second, a.Store().LeaderReady)
	b = mustServer(t, dir, "b", false, a.URL())
	t.Cleanup(func() { b.Close() })
	c = mustServer(t, dir, "c", false, a.URL())
	t.Cleanup(func() { c.Close() })
	wait.Until(t, "three voters", 20*time.Second, func() bool { p, _ := a.Store().Peers(); return len(p) == 3 })
	return a, b, c
}

func do(t *testing.T, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestThreeNodes(t *testing.T) {
	dir := t.TempDir()
	a := mustServer(t, dir, "a", true)
	defer a.Close()
	wait.Until(t, "a to lead", 20*time.Second, a.Store().LeaderReady)
	b := mustServer(t, dir, "b", false, a.URL())
	defer b.Close()
	c := mustServer(t, dir, "c", false, b.URL()) // joins through a follower
	defer c.Close()
	wait.Until(t, "three voters", 20*time.Second, func() bool { p, _ := a.Store().Peers(); return len(p) == 3 })

	// A write to a follower is served as if sent to the leader.
	code, body := do(t, "POST", c.URL()+"/tasks", `{"input":"https://example.com/a.mov","kind":"video"}`)
	if code != 201 {
		t.Fatalf("create via follower: %d %s", code, body)
	}
	var task api.Task
	json.Unmarshal(body, &task)
	for _, s := range []*Server{a, b, c} {
		wait.Until(t, "replication to "+s.cfg.NodeID, 20*time.Second, func() bool { _, err := s.Store().State().Task(task.ID); return err == nil })
	}
	code, body = do(t, "GET", b.URL()+"/tasks/"+task.ID, "")
	if code != 200 || !bytes.Contains(body, []byte(task.ID)) {
		t.Errorf("get via follower: %d %s", code, body)
	}
	// Idempotency through different nodes.
	k := []string{"Idempotency-Key", "order-7"}
	code1, b1 := do(t, "POST", b.URL()+"/tasks", `{"input":"https://example.com/b.mov","kind":"audio"}`, k...)
	code2, b2 := do(t, "POST", c.URL()+"/tasks", `{"kind":"audio", "input":"https://example.com/b.mov"}`, k...)
	code3, b3 := do(t, "POST", a.URL()+"/tasks", `{"input":"https://example.com/c.mov","kind":"audio"}`, k...)
	var t1, t2 api.Task
	json.Unmarshal(b1, &t1)
	json.Unmarshal(b2, &t2)
	if code1 != 201 || code2 != 201 || t1.ID != t2.ID || code3 != 409 {
		t.Errorf("idempotency: %d %d %d\n%s\n%s\n%s", code1, code2, code3, b1, b2, b3)
	}
	// Concurrent writers are group-committed and all land.
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		go func() {
			req, _ := http.NewRequest("POST", []*Server{a, b, c}[i%3].URL()+"/tasks", strings.NewReader(fmt.Sprintf(`{"input":"https://example.com/%d.mov","kind":"image"}`, i)))
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < 64; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	wait.Until(t, "66 tasks everywhere", 20*time.Second, func() bool {
		return a.Store().State().CountTasks() == 66 && b.Store().State().CountTasks() == 66 && c.Store().State().CountTasks() == 66
	})
	if a.Store().State().Hash() != c.Store().State().Hash() {
		t.Error("state differs between nodes")
	}
}

// TestServerTimeouts: the server serves the API with the API's own
// server settings (httpapi's TestBodyTimeout tries them on the wire): a
// request's headers and the whole request, body included, are bounded,
// so a slow client cannot hold a connection.
func TestServerTimeouts(t *testing.T) {
	s := mustServer(t, t.TempDir(), "t", true)
	t.Cleanup(func() { s.Close() })
	want := s.api.NewServer()
	if s.http.ReadHeaderTimeout != want.ReadHeaderTimeout || s.http.ReadTimeout != want.ReadTimeout || s.http.IdleTimeout != want.IdleTimeout {
		t.Errorf("server timeouts: headers %s, request %s, idle %s; want %s, %s, %s",
			s.http.ReadHeaderTimeout, s.http.ReadTimeout, s.http.IdleTimeout, want.ReadHeaderTimeout, want.ReadTimeout, want.IdleTimeout)
	}
	if want.ReadHeaderTimeout <= 0 || want.ReadTimeout <= 0 {
		t.Errorf("the API's server leaves headers (%s) or requests (%s) unbounded", want.ReadHeaderTimeout, want.ReadTimeout)
	}
}
