package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/agent"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/controlplane/server"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/storage"
)

var clips *encoderstest.Clips

func TestMain(m *testing.M) {
	clips = encoderstest.NewClips()
	code := m.Run()
	clips.Close()
	os.Exit(code)
}

const (
	testKey   = "agent-test-api-key"
	testToken = "agent-test-node-token"
	// publicAddr is what the test's names for "the internet" resolve to;
	// the test network carries it to a loopback server.
	publicAddr = "93.184.216.34"
)

// testNet is the agent's network in these tests: names resolve from a
// table, and a dial connects only to the stand-in for the internet (a
// public address, carried to a loopback server). Every other attempt is
// recorded and refused, so no test traffic ever leaves this machine, even
// if the fetcher under test let a blocked address through.
type testNet struct {
	mu       sync.Mutex
	hosts    map[string][]netip.Addr
	internet string // loopback address of the server standing in for publicAddr
	dialed   []string
}

func (n *testNet) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (n *testNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dialed = append(n.dialed, addr)
	n.mu.Unlock()
	if host, _, _ := net.SplitHostPort(addr); host == publicAddr {
		var d net.Dialer
		return d.DialContext(ctx, network, n.internet)
	}
	return nil, fmt.Errorf("test network: refusing to connect to %s", addr)
}

func (n *testNet) attempts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.dialed...)
}

// TestFetchTimeSSRF runs tasks through a control plane and an agent in
// this process, the agent with the default policy (no private inputs) and
// the test network. Inputs whose URL looks public but whose name resolves
// to a private, link-local, metadata or IPv4-mapped address, and public
// URLs that redirect to such addresses, all fail their probe step with
// input_blocked, once (not retried), and no connection is attempted to any
// of those addresses. The agent then completes a task from a public URL.
func TestFetchTimeSSRF(t *testing.T) {
	var canaryHits atomic.Int32
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		canaryHits.Add(1)
		fmt.Fprint(w, "secret")
	}))
	t.Cleanup(canary.Close)
	clip := clips.Path(t, encoderstest.Silent)
	internet := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/clip.mp4":
			http.ServeFile(w, r, clip)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		case "/to-private-name":
			http.Redirect(w, r, "http://internal.test/a.mov", http.StatusMovedPermanently)
		case "/to-loopback":
			http.Redirect(w, r, canary.URL+"/a.mov", http.StatusTemporaryRedirect)
		case "/to-mapped":
			http.Redirect(w, r, "http://[::ffff:10.1.2.3]/a.mov", http.StatusFound)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(internet.Close)
	tn := &testNet{internet: internet.Listener.Addr().String(), hosts: map[string][]netip.Addr{
		"media.example":  {netip.MustParseAddr(publicAddr)},
		"internal.test":  {netip.MustParseAddr("10.0.0.5")},
		"corp.test":      {netip.MustParseAddr("172.20.1.1")},
		"home.test":      {netip.MustParseAddr("192.168.1.10")},
		"metadata.test":  {netip.MustParseAddr("169.254.169.254")},
		"linklocal.test": {netip.MustParseAddr("169.254.10.20")},
		"mapped.test":    {netip.MustParseAddr("::ffff:10.0.0.1")},
		"ula.test":       {netip.MustParseAddr("fd12:3456::1")},
		"zero.test":      {netip.MustParseAddr("0.0.0.0")},
		"loop.test":      {netip.MustParseAddr("127.0.0.1")},
		// Every address must be allowed, not just one: a name with a
		// public and a private address is dialed only on the public one.
		"mixed.test": {netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr(publicAddr)},
	}}
	cl := mustCluster(t, storage.NewFetcher(storage.FetchConfig{Resolver: tn, Dial: tn.Dial}))

	blocked := []string{
		"http://internal.test/a.mov", "http://corp.test/a.mov", "http://home.test/a.mov",
		"http://metadata.test/latest/meta-data/", "http://linklocal.test/a.mov", "http://mapped.test/a.mov",
		"http://ula.test/a.mov", "http://zero.test/a.mov", "http://loop.test:" + port(canary) + "/a.mov",
		"http://media.example/to-metadata", "http://media.example/to-private-name", "http://media.example/to-loopback",
		"http://media.example/to-mapped", "http://media.example/to-file",
	}
	ids := map[string]string{}
	for _, in := range blocked {
		task, err := cl.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindVideo, Input: in}, client.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v (a name or a public URL must pass submission)", in, err)
		}
		ids[in] = task.ID
	}
	good, err := cl.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindImage, Input: "http://mixed.test/clip.mp4"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range blocked {
		t.Run(in, func(t *testing.T) {
			task := wait(t, cl, ids[in])
			probe := task.Steps[0]
			if task.Status != api.TaskFailed || task.Error == nil || task.Error.Kind != ittybit.ErrInputBlocked {
				t.Fatalf("task %s %+v, want failed with input_blocked", task.Status, task.Error)
			}
			if probe.Attempt != 1 {
				t.Errorf("probe attempts %d: input_blocked is not retried", probe.Attempt)
			}
			if strings.Contains(task.Error.Message, "secret") {
				t.Errorf("the error carries the target's answer: %s", task.Error.Message)
			}
		})
	}
	if task := wait(t, cl, good.ID); task.Status != api.TaskCompleted {
		t.Errorf("the public task after them: %s %+v", task.Status, task.Error)
	}
	for _, a := range tn.attempts() {
		if !strings.HasPrefix(a, publicAddr+":") {
			t.Errorf("the agent tried to connect to %s", a)
		}
	}
	if n := canaryHits.Load(); n != 0 {
		t.Errorf("the loopback target saw %d requests", n)
	}
}

func port(s *httptest.Server) string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

// mustServer runs a one-node control plane in this process, with managed
// storage in dir, until the test ends.
func mustServer(t *testing.T, dir string) (*server.Server, storage.Managed) {
	t.Helper()
	managed, err := storage.OpenManaged(context.Background(), filepath.Join(dir, "files"), storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(server.Config{
		NodeID: "s", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true,
		APIKeys: []string{testKey}, NodeTokens: []string{testToken}, Storage: managed,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, managed
}

// mustCluster runs a one-node control plane and one agent in this process,
// the agent fetching with fetcher; it returns a client of the task API.
func mustCluster(t *testing.T, fetcher agent.Fetcher) *client.Client {
	t.Helper()
	dir := t.TempDir()
	srv, managed := mustServer(t, dir)
	prober := &probe.Prober{}
	ag, err := agent.New(agent.Config{
		Servers: []string{srv.URL()}, Name: "x", Token: testToken, WorkDir: filepath.Join(dir, "work"),
		Managed: managed, Fetcher: fetcher, Prober: prober,
		Encoder: softwareEncoder{&ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: prober}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ag.Run(ctx)
	}()
	t.Cleanup(func() { stop(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for !ag.Registered() {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not register within 20 s")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
	return client.New(srv.URL(), testKey)
}

func wait(t *testing.T, cl *client.Client, id string) *api.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	task, err := cl.Wait(ctx, id, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return task
}

// softwareEncoder runs encodes with ffmpeg's software encoders in the
// test's process, where the agent would use the plugin host.
type softwareEncoder struct{ sw *ffmpeg.Software }

func (s softwareEncoder) Capabilities() []encoders.Capability {
	var out []encoders.Capability
	for _, c := range encoders.VideoCodecs {
		out = append(out, encoders.Capability{Plugin: "software", Backend: encoders.BackendSoftware, Codec: c, Available: true})
	}
	return out
}

func (s softwareEncoder) Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error) {
	plan, err := encoders.NewPlan(req.Spec, req.Source, encoders.BackendSoftware)
	if err != nil {
		return encoders.Result{}, err
	}
	f, err := s.sw.Encode(ctx, encoders.Job{Plan: plan, Input: req.Input, Output: req.Output}, progress)
	return encoders.Result{File: f, Plan: plan, Encoder: plan.Encoder, Plugin: "software"}, err
}
