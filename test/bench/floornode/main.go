// Command floornode is the floor of the throughput benchmark (section 2 of
// BENCHMARKS.md): the least a task API on the same libraries as ittybit's
// control plane must do for each POST /tasks, so that the leader's CPU per
// task can be read against what this host charges for it.
//
// Each node is net/http in front of a hashicorp/raft node (TCP transport
// on loopback, raft-wal, the settings ittybit's store uses). A POST /tasks
// reads the body, decodes its JSON, takes an id, joins the creates in
// flight in one Raft entry (group commit: at most two entries in flight,
// up to 512 tasks each, as ittybit's store does), waits for the commit and
// answers 201 with a small JSON object. The state machine decodes each
// entry and keeps each task's body in a map. It does nothing else:
// no authentication, no validation beyond two fields, no idempotency
// keys, no events, no queue, no metrics, no log line, no forwarding (the
// benchmark sends every request to the leader).
//
// It prints one JSON line when it listens ({"msg":"server started",
// "http":…, "raft":…}); POST /join?id=…&addr=… on the leader adds a voter;
// GET /readyz answers 200 once the node knows a leader, and GET /leader
// 200 on the leader only.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

const (
	maxBatch    = 512 // tasks in one entry
	maxInFlight = 2   // entries applied at once
)

func main() {
	id := flag.String("id", "", "node id")
	dir := flag.String("dir", "", "data folder")
	bootstrap := flag.Bool("bootstrap", false, "start a cluster of one")
	flag.Parse()
	if err := run(*id, *dir, *bootstrap); err != nil {
		fmt.Fprintln(os.Stderr, "floornode:", err)
		os.Exit(1)
	}
}

func run(id, dir string, bootstrap bool) error {
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
	cfg.MaxAppendEntries = 256
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
	n := &node{raft: r}
	n.wake = sync.NewCond(&n.mu)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tasks", n.create)
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

// node is one server: its Raft node and the creates waiting to commit.
type node struct {
	raft *raft.Raft
	next atomic.Uint64

	mu       sync.Mutex
	wake     *sync.Cond
	pending  []*create
	inFlight int
}

// create is one POST /tasks waiting for its entry.
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
	c := &create{id: "task_" + strconv.FormatUint(n.next.Add(1), 36) + strconv.FormatInt(time.Now().UnixNano(), 36), body: body, done: make(chan struct{})}
	n.submit(c)
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

// submit queues c for the next entry and starts one if fewer than
// maxInFlight are under way.
func (n *node) submit(c *create) {
	n.mu.Lock()
	n.pending = append(n.pending, c)
	start := n.inFlight < maxInFlight
	var batch []*create
	if start {
		batch = n.take()
	}
	n.mu.Unlock()
	if start {
		go n.commit(batch)
	}
}

// take removes up to maxBatch pending creates, counting an entry in
// flight; n.mu is held.
func (n *node) take() []*create {
	k := min(len(n.pending), maxBatch)
	batch := n.pending[:k:k]
	n.pending = n.pending[k:]
	n.inFlight++
	return batch
}

// commit applies one entry of creates, answers them, and goes on with
// what queued meanwhile.
func (n *node) commit(batch []*create) {
	for len(batch) > 0 {
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
		n.mu.Lock()
		n.inFlight--
		batch = nil
		if len(n.pending) > 0 {
			batch = n.take()
		}
		n.mu.Unlock()
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
