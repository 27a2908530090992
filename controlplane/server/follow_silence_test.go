package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// blackhole is a TCP proxy whose connections can be made to stop passing
// bytes either way without closing: what a stopped server, or a path
// that drops packets, looks like to a client. Connections made after a
// freeze pass as usual.
type blackhole struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	mu       sync.Mutex
	frozen   chan struct{} // closed by freeze, for the connections before it
	done     chan struct{}
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target, frozen: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { close(b.done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			frozen := b.frozen
			b.mu.Unlock()
			wg.Go(func() { b.pass(up, c, frozen) })
			wg.Go(func() { b.pass(c, up, frozen) })
		}
	})
	return b
}

// pass copies src to dst until either ends, or holds what it read, the
// connections open, from the freeze until the test ends.
func (b *blackhole) pass(dst, src net.Conn, frozen <-chan struct{}) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			<-b.done
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze stops the connections made so far.
func (b *blackhole) freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.frozen)
	b.frozen = make(chan struct{})
}

func (b *blackhole) url() string { return "http://" + b.ln.Addr().String() }

// TestFollowSilentConnection: client.Follow (ittybit events tail, and
// Wait's feed) keeps one connection while the feed speaks, events or
// the server's keep-alive comments; when the connection goes silent
// without closing (here a proxy that stops passing bytes), it resumes on
// a new one after the silence limit, with every event in between once,
// in order. Before, it waited on the dead connection for good.
func TestFollowSilentConnection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(Config{
		NodeID: "a", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "a"),
		Bootstrap: true, APIKeys: []string{testKey}, NodeTokens: []string{testToken}, JoinToken: testToken,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		FeedKeepAlive: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	wait.Until(t, "a to lead", 20*time.Second, s.Store().LeaderReady)
	proxy := newBlackhole(t, s.Addr())
	create := func(i int) string {
		code, body := do(t, "POST", s.URL()+"/tasks", fmt.Sprintf(`{"input":"https://example.com/%d.jpg","kind":"image"}`, i))
		var task api.Task
		if code != 201 || json.Unmarshal(body, &task) != nil {
			t.Fatalf("create: %d %s", code, body)
		}
		return task.ID
	}

	const silence = 600 * time.Millisecond
	c := client.New(proxy.url(), testKey, client.WithFeedSilence(silence))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan api.Event, 16)
	ended := make(chan error, 1)
	go func() {
		ended <- c.Follow(ctx, client.EventOptions{}, func(e api.Event) error { events <- e; return nil })
	}()
	next := func(what string) api.Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case err := <-ended:
			t.Fatalf("%s: Follow ended: %v", what, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no event in 20 s (connections through the proxy: %d)", what, proxy.accepted.Load())
		}
		return api.Event{}
	}

	want := []string{create(0)}
	first := next("the first event")
	// The feed is quiet but speaks (a comment each 100 ms): one
	// connection for 4 × the silence limit.
	time.Sleep(4 * silence)
	if n := proxy.accepted.Load(); n != 1 {
		t.Errorf("%d connections while the feed was quiet but alive, want 1", n)
	}
	proxy.freeze()
	want = append(want, create(1), create(2))
	got := []api.Event{first, next("the event after the freeze"), next("the second after the freeze")}
	for i, e := range got {
		if e.Type != api.EventTaskCreated || e.Data.ID != want[i] || (i > 0 && e.ID <= got[i-1].ID) {
			t.Errorf("event %d: %s %s %s, want task.created of %s, after the one before", i, e.ID, e.Type, e.Data.ID, want[i])
		}
	}
	select {
	case e := <-events:
		t.Errorf("an event more: %+v", e)
	case <-time.After(2 * silence):
	}
	if n := proxy.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the first, and the one after the silence", n)
	}
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow ended with %v, want context.Canceled", err)
	}
}
