package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKnownAnswer: the specification's test vector, and what a receiver
// refuses.
func TestKnownAnswer(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	at := time.Unix(1614265330, 0)
	h := Header([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, body)
	if h.Get(HeaderSignature) != want || h.Get(HeaderTimestamp) != "1614265330" {
		t.Fatalf("headers %v", h)
	}
	if err := Verify(key, h, body, at.Add(time.Minute)); err != nil {
		t.Errorf("Verify: %v", err)
	}
	other := h.Clone()
	other.Set(HeaderID, "msg_other")
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
		now  time.Time
		want error
	}{
		"body changed":     {h, []byte(`{"test": 2432232315}`), at, ErrNoSignature},
		"id changed":       {other, body, at, ErrNoSignature},
		"six minutes late": {h, body, at.Add(6 * time.Minute), ErrTimestamp},
	} {
		if err := Verify(key, tc.h, tc.body, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_AAAA"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
	s, err := NewSecret(nil)
	if err != nil || !strings.HasPrefix(s, SecretPrefix) {
		t.Fatalf("NewSecret: %q %v", s, err)
	}
	if k, err := ParseSecret(s); err != nil || len(k) != 32 {
		t.Errorf("a new secret: %d bytes, %v", len(k), err)
	}
}

// TestNodeVerifies: the npm standardwebhooks package, an independent
// implementation, verifies what Header signs, with either secret during a
// rotation, and refuses a message changed on the way.
func TestNodeVerifies(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run make deps")
	}
	mod, _ := filepath.Abs(filepath.Join("..", "..", "..", "test", "npm", "node_modules", "standardwebhooks"))
	if _, err := os.Stat(mod); err != nil {
		t.Fatal("standardwebhooks is not installed: run make deps (npm ci --prefix test/npm)")
	}
	oldSecret, _ := NewSecret(nil)
	newSecret, _ := NewSecret(nil)
	oldKey, _ := ParseSecret(oldSecret)
	newKey, _ := ParseSecret(newSecret)
	type msg struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Secret  string            `json:"secret"`
		Valid   bool              `json:"valid"`
	}
	var msgs []msg
	add := func(keys [][]byte, secret, id string, body string, tamper bool, valid bool) {
		h := Header(keys, id, time.Now(), []byte(body))
		m := msg{Headers: map[string]string{}, Body: body, Secret: secret, Valid: valid}
		for k := range h {
			m.Headers[strings.ToLower(k)] = h.Get(k)
		}
		if tamper {
			m.Body = strings.Replace(body, "completed", "failed", 1)
		}
		msgs = append(msgs, m)
	}
	body := `{"id":"evt_00000000000c0001","object":"event","type":"task.completed","created_at":1796081419916,"data":{"id":"task_1","status":"completed","metadata":{"note":"ünïcode ✓"}}}`
	add([][]byte{oldKey}, oldSecret, "evt_00000000000c0001", body, false, true)
	add([][]byte{newKey, oldKey}, oldSecret, "evt_00000000000c0002", body, false, true) // rotation: the old secret verifies
	add([][]byte{newKey, oldKey}, newSecret, "evt_00000000000c0002", body, false, true) // and the new
	add([][]byte{newKey}, oldSecret, "evt_00000000000c0003", body, false, false)        // after it, only the new
	add([][]byte{oldKey}, oldSecret, "evt_00000000000c0004", body, true, false)         // changed on the way
	in, _ := json.Marshal(msgs)
	script := `
const { Webhook } = require(process.argv[1]);
const msgs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = msgs.map(m => { try { new Webhook(m.secret).verify(m.body, m.headers); return true; } catch (e) { return false; } });
console.log(JSON.stringify(out));`
	cmd := exec.Command(node, "-e", script, mod)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(msgs) {
		t.Fatalf("node printed %s", out)
	}
	for i, m := range msgs {
		if got[i] != m.Valid {
			t.Errorf("message %d: standardwebhooks says valid %v, want %v", i, got[i], m.Valid)
		}
	}
}

// TestNext: the schedule, its jitter bounds, throttling, Retry-After.
func TestNext(t *testing.T) {
	for i, d := range Schedule {
		for _, j := range []float64{-1, 0, 1, -5, 5} {
			got, ok := Next(i+1, Failed, false, 0, j)
			lo, hi := time.Duration(float64(d)*0.8), time.Duration(float64(d)*1.2)
			if !ok || got < lo || got > hi {
				t.Errorf("attempt %d, jitter %g: %s %v, want within [%s, %s]", i+1, j, got, ok, lo, hi)
			}
		}
	}
	if d, _ := Next(1, Failed, false, 0, 0); d != 5*time.Second {
		t.Errorf("after the first failure: %s, want 5s", d)
	}
	if _, ok := Next(len(Schedule)+1, Failed, false, 0, 0); ok {
		t.Error("a retry after the schedule's last delay")
	}
	for _, r := range []Result{Delivered, Gone} {
		if _, ok := Next(1, r, false, 0, 0); ok {
			t.Errorf("a retry after %s", r)
		}
	}
	if d, _ := Next(1, Failed, true, 0, 0); d != time.Minute {
		t.Errorf("after a timeout: %s, want at least a minute", d)
	}
	for _, tc := range []struct {
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, time.Minute}, // throttled: at least a minute
		{1, 90 * time.Second, 90 * time.Second},
		{1, time.Hour, 2 * time.Minute},    // clamped to twice the delay
		{3, time.Second, 30 * time.Minute}, // never sooner than the schedule
	} {
		if d, _ := Next(tc.attempt, Throttled, false, tc.retryAfter, 0); d != tc.want {
			t.Errorf("throttled attempt %d, Retry-After %s: %s, want %s", tc.attempt, tc.retryAfter, d, tc.want)
		}
	}
	now := time.Unix(1_800_000_000, 0)
	for v, want := range map[string]time.Duration{"120": 2 * time.Minute, now.Add(time.Hour).UTC().Format(http.TimeFormat): time.Hour, "soon": 0, "": 0} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := RetryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
	for status, want := range map[int]Result{200: Delivered, 204: Delivered, 301: Failed, 400: Failed, 410: Gone, 429: Throttled, 500: Failed, 502: Throttled, 503: Throttled, 504: Throttled, 0: Failed} {
		if got := Classify(status); got != want {
			t.Errorf("Classify(%d) = %s, want %s", status, got, want)
		}
	}
}

// resolver answers from a table, and records what it was asked.
type resolver struct {
	mu      sync.Mutex
	answers map[string][]string
}

func (r *resolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[host] = addrs
}

func (r *resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.answers[host]
	if !ok {
		return nil, fmt.Errorf("no such host %s", host)
	}
	var out []netip.Addr
	for _, s := range a {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// TestSSRF: endpoints on loopback, private, link-local and metadata
// addresses, in decimal, octal and IPv6 spellings, and names that resolve
// to one, are refused when created; a name whose answer changes to a
// private address after that is refused when connecting, before any
// packet is sent.
func TestSSRF(t *testing.T) {
	res := &resolver{answers: map[string][]string{}}
	res.set("hooks.example.com", "93.184.216.34")
	res.set("evil.example.com", "10.1.2.3")
	res.set("meta.example.com", "93.184.216.34", "169.254.169.254")
	var dials atomic.Int32
	s := &Sender{Resolver: res, Dial: func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("the test dials nothing")
	}}
	ctx := context.Background()
	for _, u := range []string{
		"http://127.0.0.1/hook", "http://2130706433/hook", "http://0177.0.0.1/hook", "http://0x7f.1/hook", "http://127.0.0.1./hook",
		"http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook", "http://[::ffff:7f00:1]/hook", "http://[fe80::1]/hook",
		"http://10.0.0.1/hook", "http://192.168.1.1/hook", "http://172.16.0.1/hook", "http://169.254.169.254/latest/meta-data",
		"http://[fd00:ec2::254]/", "http://0.0.0.0/", "http://localhost:8080/hook", "http://api.localhost/hook",
		"http://evil.example.com/hook", "http://meta.example.com/hook", "http://nowhere.example.com/hook",
		"ftp://hooks.example.com/", "http://user:pass@hooks.example.com/", "hooks.example.com/x", "http://hooks.example.com/#x",
	} {
		if err := s.CheckURL(ctx, u); err == nil {
			t.Errorf("CheckURL(%q) accepted", u)
		} else if !strings.Contains(err.Error(), "accepted") && !strings.Contains(err.Error(), "public addresses only") &&
			!strings.Contains(err.Error(), "no such host") && !strings.Contains(err.Error(), "fragment") {
			t.Errorf("CheckURL(%q): %v: say what is accepted", u, err)
		}
	}
	if err := s.CheckURL(ctx, "https://hooks.example.com/ittybit"); err != nil {
		t.Errorf("a public endpoint: %v", err)
	}
	// The name turns private after the check: no connection is made.
	res.set("hooks.example.com", "127.0.0.1")
	a := s.Send(ctx, "https://hooks.example.com/ittybit", http.Header{}, []byte(`{}`))
	if a.Result != Blocked || !strings.Contains(a.Error, "127.0.0.1") || dials.Load() != 0 {
		t.Errorf("a rebound name: %+v, %d dials; want blocked before connecting", a, dials.Load())
	}
	for _, u := range []string{"http://[::ffff:10.0.0.1]/", "http://0x0a000001/", "http://evil.example.com/"} {
		if a := s.Send(ctx, u, http.Header{}, nil); a.Result != Blocked {
			t.Errorf("Send(%s): %+v, want blocked", u, a)
		}
	}
	if dials.Load() != 0 {
		t.Errorf("%d connections made to blocked addresses", dials.Load())
	}
	// A name with a public and a metadata address: only the public one is
	// dialled.
	if a := s.Send(ctx, "http://meta.example.com/", http.Header{}, nil); a.Result == Delivered || dials.Load() != 1 {
		t.Errorf("a name with a public and a blocked address: %+v, %d dials, want the public one dialled alone", a, dials.Load())
	}
	if err := (&Sender{AllowPrivate: true}).CheckURL(ctx, "http://127.0.0.1:9/hook"); err != nil {
		t.Errorf("with private addresses allowed: %v", err)
	}
}

// TestSend: what each answer comes to; redirects are not followed, the
// answer is read up to MaxAnswer, a slow receiver times out.
func TestSend(t *testing.T) {
	var redirected atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		if r.Header.Get(HeaderID) != "evt_1" || b.String() != `{"a":1}` {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(204)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { redirected.Store(true) })
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(429)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := &Sender{AllowPrivate: true, Timeout: 300 * time.Millisecond}
	h := Header([][]byte{make([]byte, 32)}, "evt_1", time.Now(), []byte(`{"a":1}`))
	for path, want := range map[string]Attempt{
		"/ok":       {Result: Delivered, Status: 204},
		"/redirect": {Result: Failed, Status: 302},
		"/gone":     {Result: Gone, Status: 410},
		"/busy":     {Result: Throttled, Status: 429, RetryAfter: 2 * time.Minute},
		"/big":      {Result: Failed, Status: 500},
		"/slow":     {Result: Failed, TimedOut: true},
	} {
		a := s.Send(context.Background(), srv.URL+path, h, []byte(`{"a":1}`))
		if a.Result != want.Result || a.Status != want.Status || a.TimedOut != want.TimedOut || a.RetryAfter != want.RetryAfter {
			t.Errorf("%s: %+v, want %+v", path, a, want)
		}
		if want.Result != Delivered && a.Error == "" {
			t.Errorf("%s: no error said", path)
		}
		if path == "/big" && len(a.Answer) != MaxAnswer {
			t.Errorf("/big: kept %d bytes of the answer, want %d", len(a.Answer), MaxAnswer)
		}
	}
	if redirected.Load() {
		t.Error("a redirect was followed")
	}
}
