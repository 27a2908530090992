package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/webhooks"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// receiver is a webhook receiver that fails some requests on purpose and
// verifies the signature of every one it takes.
type receiver struct {
	t    *testing.T
	mu   sync.Mutex
	keys [][]byte // any of them verifies
	// old verifies a delivery with one signature only: one signed before
	// a rotation applied, still on its way when the receiver changed.
	old    []byte
	got    map[string]int // webhook-id → deliveries taken
	types  map[string]string
	sigs   map[string]int // webhook-id → most signatures seen on one request
	n      int
	failAt func(n int) int // the status to answer request n with (0: take it)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.n++
	if code := rc.failAt(rc.n); code != 0 {
		w.WriteHeader(code)
		return
	}
	ok := false
	for _, k := range rc.keys {
		if webhooks.Verify(k, r.Header, body, time.Now()) == nil {
			ok = true
		}
	}
	if !ok && rc.old != nil && len(strings.Fields(r.Header.Get(webhooks.HeaderSignature))) == 1 {
		ok = webhooks.Verify(rc.old, r.Header, body, time.Now()) == nil
	}
	var e struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if !ok || json.Unmarshal(body, &e) != nil || e.ID != r.Header.Get(webhooks.HeaderID) {
		rc.t.Errorf("a delivery that does not verify: id %q, headers %v", e.ID, r.Header)
		w.WriteHeader(400)
		return
	}
	rc.got[e.ID]++
	rc.types[e.ID] = e.Type
	rc.sigs[e.ID] = max(rc.sigs[e.ID], len(strings.Fields(r.Header.Get(webhooks.HeaderSignature))))
	w.WriteHeader(204)
}

func (rc *receiver) count(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got[id]
}

func webhookServer(t *testing.T, dir, id string, bootstrap bool, join ...string) *Server {
	t.Helper()
	s, err := Open(Config{
		NodeID: id, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, id),
		Bootstrap: bootstrap, Join: join, APIKeys: []string{testKey}, NodeTokens: []string{testToken}, JoinToken: testToken,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, AllowPrivateInputs: true,
		WebhookDelays:   []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second, time.Second},
		WebhookThrottle: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	return s
}

// TestWebhooks: endpoints are made, listed, rotated and disabled through
// any node; every event reaches its endpoint, signed, with its event id as
// webhook-id on every attempt, through failures of the receiver and the
// loss of the leader; a rotation signs with both secrets; 410 disables
// the endpoint; a delivery can be retried by hand, and a test message
// sent.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := webhookServer(t, dir, "a", true)
	wait.Until(t, "a to lead", 20*time.Second, a.Store().LeaderReady)
	b := webhookServer(t, dir, "b", false, a.URL())
	defer b.Close()
	c := webhookServer(t, dir, "c", false, a.URL())
	defer c.Close()
	wait.Until(t, "three voters", 20*time.Second, func() bool { p, _ := a.Store().Peers(); return len(p) == 3 })

	rc := &receiver{t: t, got: map[string]int{}, types: map[string]string{}, sigs: map[string]int{},
		failAt: func(n int) int { return []int{0, 500, 0, 503, 0, 0, 502, 0, 0, 500}[n%10] }} // 40 % fail
	recv := httptest.NewServer(rc)
	defer recv.Close()

	code, body := do(t, "POST", b.URL()+"/webhooks", fmt.Sprintf(`{"url":%q,"events":["*"],"description":"all of it"}`, recv.URL+"/hook"))
	var wh api.Webhook
	if code != 201 || json.Unmarshal(body, &wh) != nil || !strings.HasPrefix(wh.Secret, "whsec_") || wh.Status != "enabled" {
		t.Fatalf("create: %d %s", code, body)
	}
	key, _ := webhooks.ParseSecret(wh.Secret)
	rc.mu.Lock()
	rc.keys = [][]byte{key}
	rc.mu.Unlock()
	if code, body := do(t, "GET", c.URL()+"/webhooks/"+wh.ID, ""); code != 200 || strings.Contains(string(body), "whsec_") {
		t.Errorf("get: %d %s (the secret is shown only when made)", code, body)
	}
	for _, bad := range []string{`{"url":"ftp://x/","events":["*"]}`, `{"url":"https://x.example/","events":["task.done"]}`, `{"events":["*"]}`, `{"url":"https://x.example/","events":[],"colour":1}`} {
		if code, body := do(t, "POST", a.URL()+"/webhooks", bad); code != 400 || !strings.Contains(string(body), "accepted") {
			t.Errorf("create %s: %d %s, want 400 saying what is accepted", bad, code, body)
		}
	}

	create := func(s *Server, n int) []string {
		var ids []string
		for i := range n {
			code, body := do(t, "POST", s.URL()+"/tasks", fmt.Sprintf(`{"input":"https://example.com/%d.jpg","kind":"image"}`, i))
			var task api.Task
			if code != 201 || json.Unmarshal(body, &task) != nil {
				t.Fatalf("create: %d %s", code, body)
			}
			ids = append(ids, task.ID)
		}
		return ids
	}
	create(b, 10)
	// The leader goes while deliveries and retries are under way.
	time.Sleep(150 * time.Millisecond)
	a.Close()
	survivor := b
	wait.Until(t, "a new leader", 20*time.Second, func() bool { return b.Store().LeaderReady() || c.Store().LeaderReady() })
	if c.Store().LeaderReady() {
		survivor = c
	}
	create(survivor, 10)

	// A rotation: both secrets sign for a while.
	code, body = do(t, "POST", survivor.URL()+"/webhooks/"+wh.ID+"/rotate", "")
	var rotated api.Webhook
	if code != 200 || json.Unmarshal(body, &rotated) != nil || rotated.Secret == wh.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotate: %d %s", code, body)
	}
	newKey, _ := webhooks.ParseSecret(rotated.Secret)
	rc.mu.Lock()
	rc.old = rc.keys[0]
	rc.keys = [][]byte{newKey} // the receiver changed its secret at once: the new signature must verify
	rc.mu.Unlock()
	after := create(survivor, 3)

	var events api.List[api.Event]
	wait.For(t, "every event delivered", 30*time.Second, func() error {
		code, body := do(t, "GET", survivor.URL()+"/events?limit=100", "")
		if code != 200 || json.Unmarshal(body, &events) != nil || len(events.Data) != 23 {
			return fmt.Errorf("%d events", len(events.Data))
		}
		for _, e := range events.Data {
			if rc.count(e.ID) == 0 {
				_, body := do(t, "GET", survivor.URL()+"/webhooks/"+wh.ID+"/deliveries?limit=100", "")
				return fmt.Errorf("%s not delivered; deliveries %.3000s", e.ID, body)
			}
		}
		return nil
	})
	rc.mu.Lock()
	dups := 0
	for _, n := range rc.got {
		dups += n - 1
	}
	for _, e := range events.Data {
		if rc.types[e.ID] != string(e.Type) {
			t.Errorf("event %s delivered as %q, want %s", e.ID, rc.types[e.ID], e.Type)
		}
		if e.Data.ID == after[2] && rc.sigs[e.ID] != 2 {
			t.Errorf("an event after the rotation carried %d signatures, want the new and the old", rc.sigs[e.ID])
		}
	}
	t.Logf("%d events delivered through %d requests (%d duplicates) across a leader change", len(events.Data), rc.n, dups)
	rc.mu.Unlock()

	// The deliveries and their attempts. A delivery the old leader made
	// but did not record before it went is made again (at least once):
	// wait for those too.
	var ds api.List[api.Delivery]
	wait.For(t, "every delivery recorded as delivered", 20*time.Second, func() error {
		code, body := do(t, "GET", survivor.URL()+"/webhooks/"+wh.ID+"/deliveries?limit=100", "")
		if code != 200 || json.Unmarshal(body, &ds) != nil || len(ds.Data) != 23 {
			return fmt.Errorf("deliveries: %d %.300s", code, body)
		}
		for _, d := range ds.Data {
			if d.Status != "delivered" {
				return fmt.Errorf("delivery %s is %s", d.ID, d.Status)
			}
		}
		return nil
	})
	retried := 0
	for _, d := range ds.Data {
		if d.Status != "delivered" || len(d.Attempts) == 0 || d.Attempts[len(d.Attempts)-1].StatusCode != 204 || !strings.HasPrefix(d.EventID, "evt_") {
			t.Errorf("delivery %+v", d)
		}
		if len(d.Attempts) > 1 {
			retried++
			if d.Attempts[0].Result == "delivered" || d.Attempts[0].StatusCode < 500 {
				t.Errorf("delivery %s retried after %+v", d.ID, d.Attempts[0])
			}
		}
	}
	if retried == 0 {
		t.Error("no delivery was retried, though the receiver failed 40 % of requests")
	}
	// A retry by hand sends it again, with the same webhook-id (to a
	// receiver that now takes everything: a failed retry by hand is not
	// scheduled again).
	rc.mu.Lock()
	rc.failAt = func(int) int { return 0 }
	rc.mu.Unlock()
	first := ds.Data[0]
	before := rc.count(first.EventID)
	if code, body := do(t, "POST", survivor.URL()+"/webhooks/"+wh.ID+"/deliveries/"+first.ID+"/retry", ""); code != 202 {
		t.Fatalf("retry: %d %s", code, body)
	}
	wait.Until(t, "the retry delivered", 10*time.Second, func() bool { return rc.count(first.EventID) > before })
	// A test message.
	code, body = do(t, "POST", survivor.URL()+"/webhooks/"+wh.ID+"/test", "")
	var test api.Delivery
	if code != 202 || json.Unmarshal(body, &test) != nil {
		t.Fatalf("test: %d %s", code, body)
	}
	wait.Until(t, "the test message", 10*time.Second, func() bool { return rc.count(test.EventID) > 0 })

	// An endpoint that answers 410 is disabled.
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) }))
	defer gone.Close()
	code, body = do(t, "POST", survivor.URL()+"/webhooks", fmt.Sprintf(`{"url":%q,"events":["task.created"]}`, gone.URL))
	var gw api.Webhook
	if code != 201 || json.Unmarshal(body, &gw) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	create(survivor, 1)
	wait.Until(t, "the 410 endpoint disabled", 10*time.Second, func() bool {
		code, body := do(t, "GET", survivor.URL()+"/webhooks/"+gw.ID, "")
		return code == 200 && json.Unmarshal(body, &gw) == nil && gw.Status == "disabled"
	})
	if !strings.Contains(gw.DisabledReason, "410") {
		t.Errorf("disabled because %q", gw.DisabledReason)
	}
	// ... and says so in the event log, to every node: the endpoint as GET
	// shows it, no secret.
	// Events are read from the node's own copy, which may trail the
	// leader's answer above by an apply.
	var disabled api.List[api.Event]
	wait.Until(t, "the webhook.disabled event", 10*time.Second, func() bool {
		code, body = do(t, "GET", survivor.URL()+"/events?type=webhook.disabled", "")
		return code == 200 && json.Unmarshal(body, &disabled) == nil && len(disabled.Data) > 0
	})
	if len(disabled.Data) != 1 {
		t.Fatalf("webhook.disabled events: %d %s, want one", code, body)
	}
	if w := disabled.Data[0].Data.Webhook; w == nil || w.ID != gw.ID || w.Status != "disabled" || w.DisabledReason != gw.DisabledReason || bytes.Contains(body, []byte("whsec_")) {
		t.Errorf("webhook.disabled event: %s, want the endpoint %s, disabled, without its secret", body, gw.ID)
	}
	if code, _ := do(t, "DELETE", survivor.URL()+"/webhooks/"+gw.ID, ""); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := do(t, "GET", survivor.URL()+"/webhooks/"+gw.ID, ""); code != 404 {
		t.Errorf("get a deleted endpoint: %d", code)
	}
}
