package state

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// Sentinel errors of state changes; the API maps them to its error kinds.
var (
	// ErrNotFound: no task has the id.
	ErrNotFound = errors.New("not found")
	// ErrTaskFinished: the task already ended, so it cannot be cancelled.
	ErrTaskFinished = errors.New("task already finished")
	// ErrIdempotencyConflict: an Idempotency-Key was reused with another body.
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
)

// How long request keys are remembered.
const (
	IdempotencyTTL = 24 * 60 * 60 * 1000 // ms: client Idempotency-Keys
	RequestTTL     = 60 * 60 * 1000      // ms: server-made request ids
)

// Store is the state of one control-plane node. Reads may run concurrently
// with each other and with one writer (the FSM).
type Store struct {
	db    atomic.Pointer[memdb.MemDB]
	tasks atomic.Pointer[taskTable] // the tasks as last committed (tasks.go)
	// wtasks is the writer's copy of the tasks, changed in place by the
	// write under way (tasks.go).
	wtasks   *taskTable
	reqs     atomic.Pointer[cowTree[*Request]] // request keys (cow.go)
	active   atomic.Pointer[cowTree[string]]   // ids of the tasks not ended (cow.go)
	events   atomic.Pointer[eventLog]          // the events kept (eventlog.go)
	observer atomic.Pointer[func(Change)]
	names    sync.Map // node name → *string (Store.node)

	// Events (events.go), touched only by the writer: the Raft index of
	// the entry being applied, the last event's sequence number, and
	// whether the write under way added events.
	index       uint64
	lastEvent   uint64
	eventsAdded bool
	// endpoints is false only while no webhook endpoint exists: then an
	// event queues no delivery, and is not checked against each endpoint
	// (a scan of the webhooks table for every task created). Set when an
	// endpoint is created, and read again from the table after a write
	// that may delete one and after a restore.
	endpoints bool
	// eventCount is how many events are kept (read by the leader to
	// decide when to trim).
	eventCount atomic.Int64
	// eventWake is closed and replaced when events are committed.
	eventWake atomic.Pointer[chan struct{}]
	// probe is the key liveRequest looks up, reused rather than
	// allocated for every create; only the writer looks.
	probe Request
}

// New returns an empty Store.
func New() *Store {
	s := &Store{}
	s.db.Store(mustDB())
	s.setTasks(newTaskTable())
	s.reqs.Store(newRequests())
	s.active.Store(newActive())
	s.events.Store(newEventLog())
	return s
}

func mustDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("state schema: %v", err)) // a programming error
	}
	return db
}

// CreateRequest is one task to create, fully formed by the leader: ids,
// times and steps are stamped before the request is proposed. In the log it
// travels as a SeedRequest.
type CreateRequest struct {
	Task api.Task `json:"task"`
	// Scope, Key and BodyHash identify the request (see Request). Key is
	// always set: to the client's Idempotency-Key, or a server-made id.
	Scope    string `json:"scope"`
	Key      string `json:"key"`
	BodyHash string `json:"body_hash"`
}

// CreateResult is what became of one CreateRequest.
type CreateResult struct {
	Task *api.Task `json:"task,omitempty"`
	// Replayed is set when the key had been seen: Task is the original.
	Replayed bool `json:"replayed,omitempty"`
	// Conflict is set when the key had been seen with another body.
	Conflict bool `json:"conflict,omitempty"`
	// created is the write's new tasks, as stored, and this one's place
	// among them, until Resolve builds Task.
	created *createdTasks
	at      int
}

// Resolve fills in Task where CreateSeeds left it to be built: only the
// node that proposed the entry answers its callers, and only it needs the
// tasks whole (and not for a follower's batch, answered from its seeds).
// Callers of one write may each resolve their own results at once, never
// the same result from two goroutines.
func (r *CreateResult) Resolve() {
	if r.Task == nil && r.created != nil {
		r.Task = r.created.task(r.at)
	}
}

// createdTasks are the tasks one write created, as stored, each built
// whole once, when first asked for (built has a place for each). The
// scheduler's change reads them on the writer's goroutine, from their
// seeds; after it, the proposer's callers build their own results'.
type createdTasks struct {
	stored []any
	built  []*api.Task
}

// count is how many tasks the write created (none for a nil c).
func (c *createdTasks) count() int {
	if c == nil {
		return 0
	}
	return len(c.stored)
}

// task is task i as its caller is answered: built from its seed (the
// answer has no use for a stored task's scheduling fields), or the task
// stored whole.
func (c *createdTasks) task(i int) *api.Task {
	if c.built[i] == nil {
		if st, ok := c.stored[i].(*seededTask); ok {
			t := st.Seed.Task()
			c.built[i] = &t
		} else {
			c.built[i] = &asTask(c.stored[i]).Task
		}
	}
	return c.built[i]
}

// queued is task i as it waits for its first step, read from its seed
// when it has one, else from the task stored whole; it builds nothing and
// leaves built to the results' callers.
func (c *createdTasks) queued(i int) Queued {
	if st, ok := c.stored[i].(*seededTask); ok {
		q := Queued{TaskID: st.ID, Kind: st.Kind, Project: st.Project, Priority: st.Priority, ReadyAt: st.At}
		q.StepKind = api.StepKinds(st.Kind)[0]
		if len(st.StepIDs) > 0 {
			q.StepID = st.StepIDs[0]
		}
		return q
	}
	t := asTask(c.stored[i])
	q := Queued{TaskID: t.ID, Kind: t.Kind, Project: t.Project, Priority: t.Priority}
	if len(t.Steps) > 0 {
		q.StepID, q.StepKind = t.Steps[0].ID, t.Steps[0].Kind
	}
	if len(t.Runs) > 0 {
		q.ReadyAt = t.Runs[0].ReadyAt
	}
	return q
}

// CreateTasks stores a batch of new tasks committed at Raft log index
// index, at time now (epoch ms, stamped by the leader). A request whose key
// is known returns the original task instead (or a conflict when its body
// differs), so replays and retries never create a task twice.
func (s *Store) CreateTasks(index uint64, now int64, reqs []CreateRequest) []CreateResult {
	out := s.create(index, now, len(reqs), func(i int) (string, string, string) { return reqs[i].Scope, reqs[i].Key, reqs[i].BodyHash },
		func(i int, seq uint64) any { return newStored(reqs[i].Task, seq) })
	for i := range out {
		out[i].Resolve()
	}
	return out
}

// CreateSeeds is CreateTasks for requests in the log's form: each new
// task is kept as its seed until its first change (seededTask), and the
// results' tasks are built only when asked (CreateResult.Resolve).
func (s *Store) CreateSeeds(index uint64, now int64, reqs []SeedRequest) []CreateResult {
	return s.create(index, now, len(reqs), func(i int) (string, string, string) { return reqs[i].Scope, reqs[i].Key, reqs[i].BodyHash },
		func(i int, seq uint64) any { return &seededTask{Seed: reqs[i].Seed, Seq: seq} })
}

// create stores n new tasks in one write: request i has the key and body
// hash key returns, and stored makes its task as stored, numbered seq.
func (s *Store) create(index uint64, now int64, n int, key func(i int) (scope, key, bodyHash string), stored func(i int, seq uint64) any) []CreateResult {
	txn := s.write()
	defer txn.Abort()
	out := make([]CreateResult, n)
	created := &createdTasks{stored: make([]any, 0, n)}
	for i := range n {
		scope, k, hash := key(i)
		st := stored(i, index<<16|uint64(i))
		id, _, _, _ := taskFields(st)
		// The request is remembered as this task's in the walk that finds
		// the one it replaces (nearly always none: a key is new); a live
		// one of the same key is put back and answers instead.
		reqs := s.reqs.Load()
		if prev, ok := reqs.swap(&Request{Scope: scope, Key: k, BodyHash: hash, TaskID: id, CreatedAt: now}); ok && now-prev.CreatedAt < ttl(scope) {
			if prev.BodyHash != hash {
				reqs.put(prev)
				out[i] = CreateResult{Conflict: true}
				continue
			}
			if t := getTask(txn.tasks(), prev.TaskID); t != nil {
				reqs.put(prev)
				out[i] = CreateResult{Task: &t.Task, Replayed: true}
				continue
			}
		}
		txn.putTaskRaw(st)
		s.markActive(id, true)
		s.addEvent(txn.Txn, api.EventTaskCreated, st, createdAt(st), "", 0)
		out[i] = CreateResult{created: created, at: len(created.stored)}
		created.stored = append(created.stored, st)
	}
	txn.Commit()
	s.eventsCommitted()
	// One place per task for its build, made here: the results' callers
	// may each build their own tasks at once (CreateResult.Resolve).
	created.built = make([]*api.Task, len(created.stored))
	s.notify(Change{created: created})
	return out
}

// createdAt is when a task new in the table was created.
func createdAt(raw any) int64 {
	if t, ok := raw.(*seededTask); ok {
		return t.At
	}
	return raw.(*Task).CreatedAt
}

// liveRequest returns the remembered request with this key, unless it has
// expired by now.
func (s *Store) liveRequest(scope, key string, now int64) *Request {
	s.probe.Scope, s.probe.Key = scope, key
	r, ok := s.reqs.Load().get(&s.probe)
	s.probe = Request{}
	if !ok || now-r.CreatedAt >= ttl(scope) {
		return nil
	}
	return r
}

// ttl returns how long a key of scope is remembered: an hour for the
// request ids servers make (scope "req" or "req:<api key id>"), a day for
// client Idempotency-Keys ("idem:<api key id>").
func ttl(scope string) int64 {
	if scope == "req" || strings.HasPrefix(scope, "req:") {
		return RequestTTL
	}
	return IdempotencyTTL
}

// ExpireRequests forgets request keys that expired by now.
func (s *Store) ExpireRequests(now int64) int {
	return s.reqs.Load().removeIf(func(r *Request) bool { return now-r.CreatedAt >= ttl(r.Scope) })
}

// CancelTask ends a task as cancelled at time now: the task and every step
// not yet finished. It returns a copy of the cancelled task, ErrNotFound,
// or ErrTaskFinished (with a copy of the task as it ended).
func (s *Store) CancelTask(id string, now int64) (*api.Task, error) {
	return s.CancelRequest(id, now, RequestKey{})
}

// CancelRequest is CancelTask for the request named by req (none when its
// key is ""): the task remembers the request that cancelled it (its mark),
// and the same request again, retried after its answer was lost
// (leadership moved between the commit and the answer), gets the cancelled
// task as its answer, not ErrTaskFinished: its own cancel ended it.
// Cancels applied before the mark kept a request record instead (still
// read from older snapshots until it expires).
func (s *Store) CancelRequest(id string, now int64, req RequestKey) (*api.Task, error) {
	txn := s.write()
	defer txn.Abort()
	cur := getTask(txn.tasks(), id)
	if cur == nil {
		return nil, ErrNotFound
	}
	if cur.Status.Finished() {
		c := cur.clone().Task
		if req.Key != "" {
			if cur.CancelledBy == req.Mark() {
				return &c, nil
			}
			if prev := s.liveRequest(req.Scope, req.Key, now); prev != nil && prev.TaskID == id {
				return &c, nil
			}
		}
		return &c, ErrTaskFinished
	}
	t := cur.clone()
	t.Status = api.TaskCancelled
	t.Error = &api.Error{Kind: "cancelled", Message: "the task was cancelled"}
	t.FinishedAt, t.UpdatedAt = &now, now
	t.CancelledBy = req.Mark()
	for i := range t.Steps {
		st := &t.Steps[i]
		switch st.Status {
		case api.StepCompleted, api.StepFailed, api.StepCancelled:
			continue
		}
		st.Status, st.UpdatedAt = api.StepCancelled, now
		if st.StartedAt != nil {
			st.FinishedAt = &now
		}
		cancelParts(st, now)
	}
	st := s.putTask(txn, t)
	s.addEvent(txn.Txn, api.EventTaskCancelled, st, now, "", 0)
	txn.Commit()
	s.eventsCommitted()
	s.notify(Change{Cancelled: t})
	// A copy: the caller may fill it in for a reader (the API's view),
	// and the stored version (kept by its events too) must not change.
	c := t.clone().Task
	return &c, nil
}

// setTasks makes t the tasks, as committed and as the writer's copy.
func (s *Store) setTasks(t *taskTable) {
	s.tasks.Store(t)
	s.wtasks = t.clone()
}

// UpsertServer records where a control-plane server listens.
func (s *Store) UpsertServer(srv Server) {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	mustInsert(txn, tableServers, &srv)
	txn.Commit()
}

// putTask stores a task's new version (frozen when it has ended) and
// returns what was stored.
func (s *Store) putTask(txn *write, t *Task) any {
	st := stored(t)
	txn.putTaskRaw(st)
	s.markActive(t.ID, !t.Status.Finished())
	return st
}

func mustInsert(txn *memdb.Txn, table string, obj any) {
	if err := txn.Insert(table, obj); err != nil {
		panic(fmt.Sprintf("insert into %s: %v", table, err)) // schema violation: a bug
	}
}

// getTask returns task id of t as a Task (asTask), or nil.
func getTask(t *taskTable, id string) *Task {
	raw := t.get(id)
	if raw == nil {
		return nil
	}
	return asTask(raw)
}
