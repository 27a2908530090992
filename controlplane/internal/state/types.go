package state

import (
	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// Task is a stored task: the public object and what the control plane
// keeps beside it. Stored values are never changed in place; updates store
// a copy (go-memdb hands out shared pointers).
type Task struct {
	api.Task
	// Seq is the commit order: the Raft index and the position in its batch.
	Seq uint64 `json:"seq"`
	// StatusKey mirrors Status for the status index.
	StatusKey string `json:"-"`
}

func (t *Task) clone() *Task {
	c := *t
	c.Steps = append([]api.Step(nil), t.Steps...)
	if t.Output != nil {
		o := *t.Output
		c.Output = &o
	}
	return &c
}

// Request remembers a create request by key: an Idempotency-Key of a
// client, or a request id the receiving server made so that a retry after
// an ambiguous failure cannot create the task twice.
type Request struct {
	Scope     string `json:"scope"`     // "idem:<api key id>" or "req:<api key id>"
	Key       string `json:"key"`       // the key itself
	BodyHash  string `json:"body_hash"` // hash of the canonical request
	TaskID    string `json:"task_id"`
	CreatedAt int64  `json:"created_at"` // epoch ms
}

// Server is a control-plane node: where to reach its Raft and HTTP ports.
type Server struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}
