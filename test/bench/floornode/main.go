// Command floornode is the floor of the throughput benchmark (section 2 of
// BENCHMARKS.md): the least a task API on the same libraries as ittybit's
// control plane must do for each POST /tasks, so that the leader's CPU per
// task can be read against what this host charges for it.
//
// Each node is net/http in front of a hashicorp/raft node (TCP transport
// on loopback, raft-wal, the settings ittybit's store uses). A POST /tasks
// reads the body, decodes its JSON, takes an id, joins the creates in
// flight in one Raft entry (group commit: one entry in flight,
// up to 512 tasks each, as ittybit's store does), waits for the commit and
// answers 201 with a small JSON object. The state machine decodes each
// entry and keeps each task's body in a map. It does nothing else:
// no authentication, no validation beyond two fields, no idempotency
// keys, no events, no queue, no metrics, no log line.
//
// A follower started with -leader forwards as ittybit's followers do: it
// decodes each create itself, joins the creates in flight into one
// request to the leader (POST /batch: one under way, up to 256
// creates each), and answers each client from the ids the leader sends
// back; the leader commits a batch's creates with its own. The leader is
// the one named at start: the floor has no failover.
//
// It prints one JSON line when it listens ({"msg":"server started",
// "http":…, "raft":…}); POST /join?id=…&addr=… on the leader adds a voter;
// GET /readyz answers 200 once the node knows a leader, and GET /leader
// 200 on the leader only.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

const (
	maxBatch        = 512 // tasks in one entry
	maxForwardBatch = 256 // creates in one request to the leader
	maxInFlight     = 1   // entries applied (or batches forwarded) at once
)

func main() {
	id := flag.String("id", "", "node id")
	dir := flag.String("dir", "", "data folder")
	bootstrap := flag.Bool("bootstrap", false, "start a cluster of one")
	leader := flag.String("leader", "", "the leader's URL, to forward creates to in batches (a follower)")
	pprof := flag.Bool("pprof", false, "serve net/http/pprof on another port of loopback, and say where")
	flag.Parse()
	if *pprof {
		if err := servePprof(); err != nil {
			fmt.Fprintln(os.Stderr, "floornode:", err)
			os.Exit(1)
		}
	}
	if err := run(*id, *dir, *bootstrap, *leader); err != nil {
		fmt.Fprintln(os.Stderr, "floornode:", err)
		os.Exit(1)
	}
}

// servePprof serves the profiles of net/http/pprof (on their own port, so
// that the API's mux stays as small as it is) and prints their address
// ({"msg":"serving pprof","addr":…}).
func servePprof() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]string{"msg": "serving pprof", "addr": ln.Addr().String()})
	fmt.Println(string(line))
	go func() { _ = http.Serve(ln, nil) }() // http.DefaultServeMux: net/http/pprof's routes
	return nil
}

func run(id, dir string, bootstrap bool, leader string) error {
	if id == "" || dir == "" {
		return errors.New("-id and -dir are required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
	if err != nil {
		return err
	}
	wal, err := raftwal.Open(dir)
	if err != nil {
		return err
	}
	logs, err := raft.NewLogCache(512, wal)
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return err
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	// Raft's defaults, as ittybit's servers run (MaxAppendEntries 64).
	cfg.LogOutput = io.Discard
	f := &fsm{tasks: map[string][]byte{}}
	r, err := raft.NewRaft(cfg, f, logs, wal, snaps, trans)
	if err != nil {
		return err
	}
	if bootstrap {
		boot := raft.Configuration{Servers: []raft.Server{{ID: cfg.LocalID, Address: trans.LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			return err
		}
	}
	n := &node{raft: r, leader: leader, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxInFlight}}}
	n.entries = gatherer{max: maxBatch, commit: n.apply}
	n.forwards = gatherer{max: maxForwardBatch, commit: n.forward}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tasks", n.create)
	mux.HandleFunc("POST /batch", n.batch)
	mux.HandleFunc("POST /join", n.join)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if addr, _ := r.LeaderWithID(); addr == "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /leader", func(w http.ResponseWriter, _ *http.Request) {
		if r.State() != raft.Leader {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]string{"msg": "server started", "http": ln.Addr().String(), "raft": string(trans.LocalAddr())})
	fmt.Println(string(line))
	return http.Serve(ln, mux)
}

// node is one server: its Raft node and the creates waiting to commit or
// to go to the leader.
type node struct {
	raft     *raft.Raft
	next     atomic.Uint64
	leader   string // the leader's URL on a follower that forwards
	client   *http.Client
	entries  gatherer // creates to commit here
	forwards gatherer // creates to send to the leader
}

// create is one create waiting for its entry.
type create struct {
	id   string
	body []byte
	err  error
	done chan struct{}
}

// request is the part of a task's JSON this API reads.
type request struct {
	Input   string          `json:"input"`
	Kind    string          `json:"kind"`
	Options json.RawMessage `json:"options"`
}

func (n *node) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil || req.Input == "" || req.Kind == "" {
		http.Error(w, `{"error":"input and kind are required"}`, http.StatusBadRequest)
		return
	}
	c := &create{body: body, done: make(chan struct{})}
	if n.leader != "" {
		n.forwards.submit(c)
	} else {
		c.id = n.newID()
		n.entries.submit(c)
	}
	<-c.done
	if c.err != nil {
		http.Error(w, c.err.Error(), http.StatusServiceUnavailable)
		return
	}
	out, _ := json.Marshal(struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		Input  string `json:"input"`
		Status string `json:"status"`
	}{c.id, req.Kind, req.Input, "queued"})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
}

func (n *node) newID() string {
	return "task_" + strconv.FormatUint(n.next.Add(1), 36) + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// batch serves POST /batch on the leader: a follower's creates (each body
// after its length, as a uvarint), committed with the leader's own; the
// answer is their ids, in the same form.
func (n *node) batch(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var cs []*create
	for len(b) > 0 {
		body, rest, ok := cut(b)
		if !ok {
			http.Error(w, "a bad batch", http.StatusBadRequest)
			return
		}
		cs = append(cs, &create{id: n.newID(), body: body, done: make(chan struct{})})
		b = rest
	}
	for _, c := range cs {
		n.entries.submit(c)
	}
	var out []byte
	for _, c := range cs {
		<-c.done
		if c.err != nil {
			http.Error(w, c.err.Error(), http.StatusServiceUnavailable)
			return
		}
		out = binary.AppendUvarint(out, uint64(len(c.id)))
		out = append(out, c.id...)
	}
	_, _ = w.Write(out)
}

// cut returns the length-prefixed bytes at the start of b and the rest.
func cut(b []byte) (field, rest []byte, ok bool) {
	k, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < k {
		return nil, nil, false
	}
	return b[w : w+int(k)], b[w+int(k):], true
}

// apply commits one entry of creates.
func (n *node) apply(batch []*create) {
	var entry []byte
	for _, c := range batch {
		entry = binary.AppendUvarint(entry, uint64(len(c.id)))
		entry = append(entry, c.id...)
		entry = binary.AppendUvarint(entry, uint64(len(c.body)))
		entry = append(entry, c.body...)
	}
	err := n.raft.Apply(entry, 10*time.Second).Error()
	for _, c := range batch {
		c.err = err
		close(c.done)
	}
}

// forward sends one batch of creates to the leader and hands each its id.
func (n *node) forward(batch []*create) {
	var req []byte
	for _, c := range batch {
		req = binary.AppendUvarint(req, uint64(len(c.body)))
		req = append(req, c.body...)
	}
	ids, err := n.post(req)
	for _, c := range batch {
		id, rest, ok := cut(ids)
		switch {
		case err != nil:
			c.err = err
		case !ok:
			c.err = errors.New("the leader answered too few ids")
		default:
			c.id, ids = string(id), rest
		}
		close(c.done)
	}
}

func (n *node) post(batch []byte) ([]byte, error) {
	resp, err := n.client.Post(n.leader+"/batch", "application/octet-stream", bytes.NewReader(batch))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("the leader answered %s: %s", resp.Status, out)
	}
	return out, err
}

// gatherer is group commit: a create joins the next batch, which starts
// at once while fewer than maxInFlight are under way, and otherwise when
// one of them ends, with everything that queued meanwhile (up to max).
type gatherer struct {
	max    int
	commit func([]*create)

	mu       sync.Mutex
	pending  []*create
	inFlight int
}

func (g *gatherer) submit(c *create) {
	g.mu.Lock()
	g.pending = append(g.pending, c)
	var batch []*create
	if g.inFlight < maxInFlight {
		batch = g.take()
	}
	g.mu.Unlock()
	if batch != nil {
		go g.run(batch)
	}
}

// take removes up to max pending creates, counting a batch in flight;
// g.mu is held.
func (g *gatherer) take() []*create {
	k := min(len(g.pending), g.max)
	batch := g.pending[:k:k]
	g.pending = g.pending[k:]
	g.inFlight++
	return batch
}

// run commits batch, then goes on with what queued meanwhile.
func (g *gatherer) run(batch []*create) {
	for len(batch) > 0 {
		g.commit(batch)
		g.mu.Lock()
		g.inFlight--
		batch = nil
		if len(g.pending) > 0 {
			batch = g.take()
		}
		g.mu.Unlock()
	}
}

func (n *node) join(w http.ResponseWriter, r *http.Request) {
	id, addr := r.URL.Query().Get("id"), r.URL.Query().Get("addr")
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second).Error(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// fsm keeps each task's body by id.
type fsm struct {
	mu    sync.Mutex
	tasks map[string][]byte
}

func (f *fsm) Apply(l *raft.Log) any {
	b := l.Data
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(b) > 0 {
		idLen, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < idLen {
			return errors.New("a bad entry")
		}
		id := string(b[k : k+int(idLen)])
		b = b[k+int(idLen):]
		bodyLen, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < bodyLen {
			return errors.New("a bad entry")
		}
		f.tasks[id] = append([]byte(nil), b[k:k+int(bodyLen)]...)
		b = b[k+int(bodyLen):]
	}
	return nil
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return snapshot{}, nil }
func (f *fsm) Restore(rc io.ReadCloser) error      { return rc.Close() }

// snapshot is empty: the benchmark's runs are shorter than the first
// snapshot is worth.
type snapshot struct{}

func (snapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (snapshot) Release()                          {}
