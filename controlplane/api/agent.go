package api

import (
	"encoding/json"

	"github.com/ittybit-oss/ittybit/encoders"
)

// The wire types between agents and the control plane (node tokens only).

// NodeRegistration is the body of POST /internal/nodes.
type NodeRegistration struct {
	Name         string                `json:"name"`
	Capabilities []encoders.Capability `json:"capabilities"`
	// Slots is how many steps the agent runs at once.
	Slots   int    `json:"slots"`
	Version string `json:"version,omitempty"`
}

// NodeRegistered answers a registration: how often to send heartbeats.
type NodeRegistered struct {
	Name string `json:"name"`
	// IntervalMillis is the heartbeat period; the node is declared down
	// when none arrives for TTLMillis.
	IntervalMillis int64 `json:"interval_ms"`
	TTLMillis      int64 `json:"ttl_ms"`
}

// RunningStep is a step an agent is running, with its progress.
type RunningStep struct {
	StepID       string  `json:"step_id"`
	Attempt      int     `json:"attempt"`
	Progress     float64 `json:"progress"`
	Frames       int64   `json:"frames,omitempty"`
	MediaSeconds float64 `json:"media_seconds,omitempty"`
	Speed        float64 `json:"speed,omitempty"`
}

// Heartbeat is the body of POST /internal/nodes/{name}/heartbeat.
type Heartbeat struct {
	Running  []RunningStep `json:"running"`
	Draining bool          `json:"draining,omitempty"`
}

// HeartbeatReply tells the agent when to send the next heartbeat and which
// steps to stop (their task was cancelled, or they were given to another
// node).
type HeartbeatReply struct {
	IntervalMillis int64    `json:"interval_ms"`
	TTLMillis      int64    `json:"ttl_ms"`
	Cancel         []string `json:"cancel,omitempty"`
}

// Assignment is a step leased to an agent. Attempt is the fencing token:
// reports must carry it.
type Assignment struct {
	TaskID  string `json:"task_id"`
	StepID  string `json:"step_id"`
	Step    string `json:"step"` // the step kind
	Attempt int    `json:"attempt"`
	// Task is the task when the step was assigned, with the outputs of the
	// steps before it.
	Task Task `json:"task"`
}

// Assignments answers GET /internal/nodes/{name}/assignments.
type Assignments struct {
	Assignments []Assignment `json:"assignments"`
}

// Step outcomes an agent reports.
const (
	OutcomeCompleted = "completed"
	OutcomeFailed    = "failed"
	OutcomeReleased  = "released" // handed back unfinished (the agent drains)
)

// StepReport is the body of POST /internal/steps/{id}/report.
type StepReport struct {
	// TaskID names the step's task, so that a report of a task that has
	// ended is judged (and refused as stale) rather than not found.
	TaskID  string `json:"task_id,omitempty"`
	Attempt int    `json:"attempt"`
	Outcome string `json:"outcome"`
	// Completed: the step's output, and the options it resolved.
	Output  json.RawMessage `json:"output,omitempty"`
	Options json.RawMessage `json:"options,omitempty"`
	// Failed: why, and whether another attempt may succeed.
	Error     *Error `json:"error,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
}

// NodeInfo describes an agent: GET /internal/nodes.
type NodeInfo struct {
	Name         string                `json:"name"`
	Status       string                `json:"status"`
	Slots        int                   `json:"slots"`
	Running      int                   `json:"running"`
	Capabilities []encoders.Capability `json:"capabilities"`
	LastSeenMs   int64                 `json:"last_seen_ms,omitempty"`
}
