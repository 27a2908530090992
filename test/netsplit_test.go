package test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// netsplit cuts links between servers. Each server runs with --peer-proxy
// pointing at its own proxy here, through which all its traffic to other
// servers (Raft, forwarded requests, joins) goes as HTTP CONNECT tunnels;
// so every tunnel's source is known, and its destination is named in the
// CONNECT. Cutting a node off closes its tunnels and refuses new ones in
// both directions; clients still reach every node directly, as clients on
// the node's side of a real partition would.
type netsplit struct {
	mu       sync.Mutex
	nodes    map[string]string // a server's HTTP and Raft addresses → its name
	isolated map[string]bool
	tunnels  map[*link]bool
	refused  int
}

// link is one tunnel: from a server to an address, with both connections.
type link struct {
	src        string // the server that opened it
	addr       string // where it goes: a server's address, known by learn
	down, up   net.Conn
	closedOnce sync.Once
}

func (l *link) close() {
	l.closedOnce.Do(func() {
		l.down.Close()
		l.up.Close()
	})
}

func newNetsplit() *netsplit {
	return &netsplit{nodes: map[string]string{}, isolated: map[string]bool{}, tunnels: map[*link]bool{}}
}

// proxy starts the proxy that server name's traffic to its peers goes
// through and returns its address, for --peer-proxy.
func (n *netsplit) proxy(tb testing.TB, name string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ln.Close()
		n.mu.Lock()
		for l := range n.tunnels {
			l.close()
		}
		n.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go n.serve(c, name)
		}
	}()
	return ln.Addr().String()
}

// learn records a started server's addresses, so tunnels to it are known
// as going to it.
func (n *netsplit) learn(ps ...*proc) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range ps {
		n.nodes[p.HTTPAddr], n.nodes[p.RaftAddr] = p.name, p.name
	}
}

// cut isolates a node: no traffic between it and any other server.
func (n *netsplit) cut(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[name] = true
	for l := range n.tunnels {
		// A tunnel opened before its destination was learnt is judged
		// by what is known now.
		if n.blocked(l.src, n.nodes[l.addr]) {
			l.close()
			delete(n.tunnels, l)
		}
	}
}

// heal lets every node reach every other again.
func (n *netsplit) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated = map[string]bool{}
}

// refusals is how many tunnels were refused so far.
func (n *netsplit) refusals() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused
}

// blocked says whether src and dst are on different sides. Callers hold
// n.mu.
func (n *netsplit) blocked(src, dst string) bool {
	return dst != "" && n.isolated[src] != n.isolated[dst]
}

// serve answers one CONNECT from server src.
func (n *netsplit) serve(c net.Conn, src string) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		c.Close()
		return
	}
	n.mu.Lock()
	dst := n.nodes[req.Host]
	if n.blocked(src, dst) {
		n.refused++
		n.mu.Unlock()
		io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		return
	}
	n.mu.Unlock()
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		return
	}
	l := &link{src: src, addr: req.Host, down: c, up: up}
	n.mu.Lock()
	if n.blocked(src, n.nodes[req.Host]) { // cut while dialing
		n.mu.Unlock()
		l.close()
		return
	}
	n.tunnels[l] = true
	n.mu.Unlock()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		n.drop(l)
		return
	}
	done := make(chan struct{})
	go func() {
		// Bytes the client sent right behind its CONNECT, then the rest.
		_, _ = io.Copy(up, br)
		l.close()
		close(done)
	}()
	_, _ = io.Copy(c, up)
	n.drop(l)
	<-done
}

func (n *netsplit) drop(l *link) {
	l.close()
	n.mu.Lock()
	delete(n.tunnels, l)
	n.mu.Unlock()
}

// netsplitCluster starts a three-node cluster whose servers reach each other
// only through a netsplit (a with --bootstrap, b joining through a, c
// through b; no rate limit), and returns once all three hold the same
// state.
func netsplitCluster(t *testing.T) (*netsplit, []*proc) {
	t.Helper()
	split := newNetsplit()
	start := func(name string, extra ...string) *proc {
		p := mustServer(t, name, append([]string{"--peer-proxy", split.proxy(t, name), "--rate-limit", "0"}, extra...)...)
		mustReady(t, p)
		split.learn(p)
		return p
	}
	a := start("a", "--bootstrap")
	b := start("b", "--join", a.URL())
	c := start("c", "--join", b.URL())
	nodes := []*proc{a, b, c}
	waitSameState(t, 20*time.Second, nodes...)
	return split, nodes
}
