package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TaskProject returns the project of task id ("" for the operator's), or
// ErrNotFound, without reading the task whole.
func (s *Store) TaskProject(id string) (string, error) {
	raw := s.tasks.Load().get(id)
	if raw == nil {
		return "", ErrNotFound
	}
	return taskProject(raw), nil
}

// Task returns a copy of the task with the id, or ErrNotFound.
func (s *Store) Task(id string) (*api.Task, error) {
	raw := s.tasks.Load().get(id)
	if raw == nil {
		return nil, ErrNotFound
	}
	return readTask(raw), nil
}

// readTask returns a copy of a stored task for a reader.
func readTask(raw any) *api.Task {
	switch t := raw.(type) {
	case *coldTask:
		return &t.mustThaw().Task // a copy already
	case *seededTask:
		return &t.task().Task // built anew
	}
	c := raw.(*Task).clone().Task
	return &c
}

// Order is the direction of a listing.
type Order string

// List orders: newest first (the default) or oldest first.
const (
	Desc Order = "desc"
	Asc  Order = "asc"
)

// ListQuery selects a page of tasks. After and Before are task ids: the
// page starts just past After, or ends just before Before, in Order.
type ListQuery struct {
	Limit  int
	Order  Order
	After  string
	Before string
	Status api.TaskStatus
	Kind   encoders.Kind
	// Project, when set, lists only that project's tasks (a cursor of
	// another project's task names no task).
	Project string
}

// ListTasks returns one page of tasks in q.Order and whether more follow
// (in the direction of travel). A cursor naming no task is ErrNotFound.
func (s *Store) ListTasks(q ListQuery) ([]*api.Task, bool, error) {
	tasks := s.tasks.Load()
	forward := q.Order != Asc // desc: newest first, i.e. walking ids downwards
	cursor := q.After
	if q.Before != "" {
		cursor = q.Before
		forward = !forward
	}
	descending := forward // walking ids downwards?
	if cursor != "" {
		c := tasks.get(cursor)
		if c == nil || (q.Project != "" && taskProject(c) != q.Project) {
			return nil, false, ErrNotFound
		}
	}
	var page []*api.Task
	more := false
	// A project's tasks are a range of the project index, in id order.
	tasks.walk(q.Project, descending, cursor, func(raw any) bool {
		id, _, kind, status := taskFields(raw)
		if id == cursor || (q.Status != "" && status != q.Status) || (q.Kind != "" && kind != q.Kind) {
			return true
		}
		if len(page) == q.Limit {
			more = true
			return false
		}
		page = append(page, readTask(raw))
		return true
	})
	if q.Before != "" {
		// Walked away from the cursor backwards; show in list order.
		for i, j := 0, len(page)-1; i < j; i, j = i+1, j-1 {
			page[i], page[j] = page[j], page[i]
		}
	}
	return page, more, nil
}

// Servers returns every known control-plane server.
func (s *Store) Servers() []Server {
	it, err := s.db.Load().Txn(false).Get(tableServers, "id")
	if err != nil {
		return nil
	}
	var out []Server
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*Server))
	}
	return out
}

// Server returns the server with the id.
func (s *Store) Server(id string) (Server, bool) {
	raw, err := s.db.Load().Txn(false).First(tableServers, "id", id)
	if err != nil || raw == nil {
		return Server{}, false
	}
	return *raw.(*Server), true
}

// CountTasks returns how many tasks are stored.
func (s *Store) CountTasks() int { return s.tasks.Load().len() }

// count returns how many objects an index of a table holds.
func (s *Store) count(table, index string) int {
	it, err := s.db.Load().Txn(false).Get(table, index)
	if err != nil {
		return 0
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n
}

// Hash returns a SHA-256 over every task in id order: equal hashes
// mean equal task state on two nodes, or before and after a restart.
// A frozen task counts as its JSON, so the hash does not depend on how
// the bytes were compressed.
func (s *Store) Hash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	ok := true
	var line []byte // what enc.Encode writes for a task, built by hand (appendRecord)
	encode := func(t interface{ appendJSON([]byte) ([]byte, error) }) {
		var err error
		if line, err = t.appendJSON(line[:0]); err == nil {
			h.Write(append(line, '\n'))
		}
	}
	s.tasks.Load().each(func(raw any) bool {
		switch t := raw.(type) {
		case *coldTask:
			data, err := t.json()
			if err != nil {
				ok = false
				return false
			}
			_ = enc.Encode(t.Seq)
			h.Write(data)
			if t.CancelledBy != (RequestMark{}) {
				h.Write(t.CancelledBy[:])
			}
		case *Task:
			encode(t)
		case *seededTask:
			encode(t) // as the task whole
		}
		return true
	})
	if !ok {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
