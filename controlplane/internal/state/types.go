package state

import (
	"crypto/sha256"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Task is a stored task: the public object and what the control plane
// keeps beside it. Stored values are never changed in place; updates store
// a copy (go-memdb hands out shared pointers).
type Task struct {
	api.Task
	// Seq is the commit order: the Raft index and the position in its batch.
	Seq uint64 `json:"seq"`
	// Runs holds, per step, what the scheduler needs beside the public
	// fields: failures so far and the earliest time of the next try.
	Runs []StepRun `json:"runs,omitempty"`
	// CancelledBy marks the request that cancelled the task (zero when
	// none did, or it had no id): the same request again, retried after
	// its answer was lost, is answered as its first try was.
	CancelledBy RequestMark `json:"-"`
}

// RequestMark is a request's key made short: the first 12 bytes of the
// SHA-256 of its scope and key. Kept on the task it cancelled, it costs 12
// bytes where a request record costs hundreds.
type RequestMark [12]byte

// Mark returns req's mark, zero when req has no key.
func (req RequestKey) Mark() RequestMark {
	var m RequestMark
	if req.Key == "" {
		return m
	}
	h := sha256.New()
	h.Write([]byte(req.Scope))
	h.Write([]byte{0})
	h.Write([]byte(req.Key))
	copy(m[:], h.Sum(nil))
	return m
}

// StepRun is the scheduling state of one step.
type StepRun struct {
	Failures  int   `json:"failures,omitempty"`
	NotBefore int64 `json:"not_before,omitempty"` // epoch ms
	// ReadyAt is when the step last became ready to run (epoch ms): for
	// queue order and the queued → processing wait.
	ReadyAt int64 `json:"ready_at,omitempty"`
	// Holder is the node that completed the step and so holds what it
	// left behind (the probe: the fetched source; the encode: the result),
	// where the next step is best placed.
	Holder string `json:"holder,omitempty"`
	// Avoid is the node a release asked the next attempt to keep away
	// from (StepUpdate.Avoid); cleared by the next assignment.
	Avoid string `json:"avoid,omitempty"`
	// Issued is the highest attempt number given to a part, when above
	// its Attempt (a backup copy that failed): the next attempt comes
	// after it, so no two copies ever share a fencing token.
	Issued int `json:"issued,omitempty"`
	// Parts is the scheduling state of each part of a split step.
	Parts []StepRun `json:"parts,omitempty"`
}

func (t *Task) clone() *Task {
	c := *t
	c.Steps = append([]api.Step(nil), t.Steps...)
	c.Runs = append([]StepRun(nil), t.Runs...)
	if len(c.Runs) < len(c.Steps) {
		c.Runs = append(c.Runs, make([]StepRun, len(c.Steps)-len(c.Runs))...)
	}
	if t.Output != nil {
		o := *t.Output
		c.Output = &o
	}
	return &c
}

// Holder returns the node holding what the step of this kind left behind,
// or "".
func (t *Task) Holder(kind string) string {
	for i, s := range t.Steps {
		if s.Kind == kind && i < len(t.Runs) {
			return t.Runs[i].Holder
		}
	}
	return ""
}

// Current returns the index of the step to run next: the first that has
// not completed; -1 when every step has.
func (t *Task) Current() int {
	for i, s := range t.Steps {
		if s.Status != api.StepCompleted {
			return i
		}
	}
	return -1
}

// Node is a registered agent.
type Node struct {
	Name         string                `json:"name"`
	Capabilities []encoders.Capability `json:"capabilities"`
	// Slots is how many steps the agent runs at once.
	Slots   int    `json:"slots"`
	Version string `json:"version,omitempty"`
	// Parts: the agent runs the parts of split steps.
	Parts        bool       `json:"parts,omitempty"`
	Status       NodeStatus `json:"status"`
	RegisteredAt int64      `json:"registered_at"`
	UpdatedAt    int64      `json:"updated_at"`
}

// NodeStatus is an agent's state as the cluster records it.
type NodeStatus string

// Node states: taking work, finishing its work and taking no more, or
// gone (its heartbeats stopped).
const (
	NodeReady    NodeStatus = "ready"
	NodeDraining NodeStatus = "draining"
	NodeDown     NodeStatus = "down"
)

// Meta is a cluster-wide setting kept in the replicated state.
type Meta struct {
	Key   string `json:"key"`
	Value string `json:"value"`
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
