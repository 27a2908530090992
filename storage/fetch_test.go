package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
)

// fakeNet resolves names from a table and records dial attempts instead of
// connecting anywhere but loopback, so a wrong fetcher can never send
// traffic off this machine.
type fakeNet struct {
	mu      sync.Mutex
	hosts   map[string][]netip.Addr
	dialed  []string
	forward string // loopback address to connect public names to
}

func (f *fakeNet) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	f.dialed = append(f.dialed, addr)
	f.mu.Unlock()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if ap.Addr().IsLoopback() {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	if f.forward != "" && BlockedReason(ap.Addr()) == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, f.forward)
	}
	return nil, fmt.Errorf("test network: refusing to connect to %s", addr)
}

func (f *fakeNet) attempts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dialed...)
}

func TestFetchRefusesBlockedAddresses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "secret")
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	fn := &fakeNet{hosts: map[string][]netip.Addr{
		"rebind.example":   {netip.MustParseAddr("127.0.0.1")},
		"internal.example": {netip.MustParseAddr("10.0.0.5")},
		"meta.example":     {netip.MustParseAddr("169.254.169.254")},
		"mapped.example":   {netip.MustParseAddr("::ffff:192.168.1.1")},
		"v6.example":       {netip.MustParseAddr("::1")},
	}}
	f := NewFetcher(FetchConfig{Resolver: fn, Dial: fn.Dial})
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/", port),
		fmt.Sprintf("http://127.0.0.1.:%d/", port),
		fmt.Sprintf("http://2130706433:%d/", port),
		fmt.Sprintf("http://0177.0.0.1:%d/", port),
		fmt.Sprintf("http://127.1:%d/", port),
		"http://0xa9fea9fe/latest/meta-data/",
		fmt.Sprintf("http://[::1]:%d/", port),
		fmt.Sprintf("http://rebind.example:%d/", port),
		"http://internal.example/", "http://meta.example/latest/meta-data/", "http://mapped.example/", "http://v6.example/",
		"http://0.0.0.0/", "http://169.254.169.254/",
	} {
		t.Run(u, func(t *testing.T) {
			_, err := f.Fetch(t.Context(), u, &bytes.Buffer{})
			if ittybit.KindOf(err) != ittybit.ErrInputBlocked {
				t.Fatalf("got %v, want input_blocked", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the target server saw %d requests", n)
	}
	if a := fn.attempts(); len(a) != 0 {
		t.Errorf("dial attempts to blocked addresses: %v", a)
	}
}

func TestFetchRefusesRedirectToPrivate(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-loopback":
			http.Redirect(w, r, target.URL+"/", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/", http.StatusFound)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		}
	}))
	t.Cleanup(public.Close)
	// public.example resolves to a public address; the fake network carries
	// it to the loopback server standing in for the internet.
	fn := &fakeNet{hosts: map[string][]netip.Addr{"public.example": {netip.MustParseAddr("93.184.216.34")}}, forward: public.Listener.Addr().String()}
	f := NewFetcher(FetchConfig{Resolver: fn, Dial: fn.Dial})
	for _, path := range []string{"/to-loopback", "/to-metadata", "/to-file"} {
		_, err := f.Fetch(t.Context(), "http://public.example"+path, &bytes.Buffer{})
		if ittybit.KindOf(err) != ittybit.ErrInputBlocked {
			t.Errorf("%s: got %v, want input_blocked", path, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the private target saw %d requests", hits.Load())
	}
	for _, a := range fn.attempts() {
		if !strings.HasPrefix(a, "93.184.216.34:") {
			t.Errorf("dialed %s", a)
		}
	}
}

func TestFetchLimits(t *testing.T) {
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 2048))
		case "/declared-big":
			w.Header().Set("Content-Length", "1000000")
			w.Write([]byte("x"))
		case "/stall":
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			select {
			case <-stall:
			case <-r.Context().Done():
			}
		case "/ok":
			fmt.Fprint(w, "media bytes")
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	f := NewFetcher(FetchConfig{AllowPrivate: true, MaxBytes: 1024, IdleTimeout: 300 * time.Millisecond})
	var buf bytes.Buffer
	if n, err := f.Fetch(t.Context(), srv.URL+"/ok", &buf); err != nil || n != 11 || buf.String() != "media bytes" {
		t.Errorf("ok: %d %v %q", n, err, buf.String())
	}
	for path, kind := range map[string]ittybit.ErrorKind{
		"/big": ittybit.ErrInputTooLarge, "/declared-big": ittybit.ErrInputTooLarge,
		"/stall": ittybit.ErrFetchFailed, "/missing": ittybit.ErrFetchFailed, "/loop": ittybit.ErrFetchFailed,
	} {
		start := time.Now()
		_, err := f.Fetch(t.Context(), srv.URL+path, &bytes.Buffer{})
		if ittybit.KindOf(err) != kind {
			t.Errorf("%s: got %v, want %s", path, err, kind)
		}
		if path == "/stall" && time.Since(start) > 10*time.Second {
			t.Errorf("stalled source took %s to fail", time.Since(start))
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Fetch(ctx, srv.URL+"/ok", &bytes.Buffer{}); ittybit.KindOf(err) != ittybit.ErrCancelled {
		t.Errorf("cancelled: got %v", err)
	}
	if _, err := f.Fetch(t.Context(), "ftp://example.com/a", &bytes.Buffer{}); ittybit.KindOf(err) != ittybit.ErrFetchFailed {
		t.Errorf("ftp: got %v", err)
	}
	var e *ittybit.Error
	if _, err := f.Fetch(t.Context(), srv.URL+"/missing?sig=SECRET", &bytes.Buffer{}); !errors.As(err, &e) || strings.Contains(e.Message, "SECRET") {
		t.Errorf("error leaks the query: %v", err)
	}
}

// fullDisk is a writer that takes a few bytes, then fails as a full disk
// does.
type fullDisk struct{ room int }

func (d *fullDisk) Write(p []byte) (int, error) {
	if len(p) > d.room {
		n := d.room
		d.room = 0
		return n, syscall.ENOSPC
	}
	d.room -= len(p)
	return len(p), nil
}

// TestFetchLocalWriteFailure: a download that cannot be written here (a
// full disk) is this node's failure, internal, not the origin's.
func TestFetchLocalWriteFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 64<<10))
	}))
	t.Cleanup(srv.Close)
	f := NewFetcher(FetchConfig{AllowPrivate: true})
	_, err := f.Fetch(t.Context(), srv.URL+"/a.mov", &fullDisk{room: 1000})
	if ittybit.KindOf(err) != ittybit.ErrInternal || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("got %v, want internal: no space left on device", err)
	}
}
