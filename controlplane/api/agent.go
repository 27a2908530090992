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
	// Parts is set by an agent that runs the parts of split steps (and
	// stitches them); the leader gives parts to no other.
	Parts bool `json:"parts,omitempty"`
}

// NodeRegistered answers a registration: how often to send heartbeats.
type NodeRegistered struct {
	Name string `json:"name"`
	// IntervalMillis is the heartbeat period; the node is declared down
	// when none arrives for TTLMillis.
	IntervalMillis int64 `json:"interval_ms"`
	TTLMillis      int64 `json:"ttl_ms"`
	// CountFramesFrom asks the agent to count the frames of the sources of
	// video and adaptive tasks of at least this many seconds when it probes
	// them (a split needs the exact count); 0 when the cluster splits
	// nothing.
	CountFramesFrom float64 `json:"count_frames_from,omitempty"`
}

// RunningStep is a step an agent holds, with its progress.
type RunningStep struct {
	StepID       string  `json:"step_id"`
	Attempt      int     `json:"attempt"`
	Progress     float64 `json:"progress"`
	Frames       int64   `json:"frames,omitempty"`
	MediaSeconds float64 `json:"media_seconds,omitempty"`
	Speed        float64 `json:"speed,omitempty"`
	// Reporting: the step has ended and the agent is delivering its
	// report, for ReportingMillis so far. The leader gives a report a
	// bounded time to arrive, then runs the step elsewhere.
	Reporting       bool  `json:"reporting,omitempty"`
	ReportingMillis int64 `json:"reporting_ms,omitempty"`
}

// Received is what an agent has taken in of its assignments: the epoch of
// the leader that sent them (each leadership has its own) and the highest
// delivery sequence number of that epoch it has processed (the long-poll
// answers in order). With it the
// leader resends an assignment whose answer was lost, and releases one the
// agent received but no longer holds (its report was lost): nothing lost
// on the way leaves a step stuck.
type Received struct {
	Epoch string `json:"epoch,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
}

// Heartbeat is the body of POST /internal/nodes/{name}/heartbeat. Running
// lists every step the agent holds, reports in flight included; with
// Received, the leader releases the steps it leased to the agent that the
// agent does not hold.
type Heartbeat struct {
	Running  []RunningStep `json:"running"`
	Draining bool          `json:"draining,omitempty"`
	Received
}

// HeartbeatReply tells the agent when to send the next heartbeat and which
// steps to stop (their task was cancelled, or they were given to another
// node). Epoch is the leader's: an agent that has not heard from this
// leader yet adopts it, with nothing received.
type HeartbeatReply struct {
	IntervalMillis int64    `json:"interval_ms"`
	TTLMillis      int64    `json:"ttl_ms"`
	Cancel         []string `json:"cancel,omitempty"`
	Epoch          string   `json:"epoch,omitempty"`
	// ProgressMillis is the heartbeat period while the agent runs steps
	// (progress stays fresh): a second, longer in large fleets so that
	// the leader hears a bounded number of heartbeats a second.
	ProgressMillis int64 `json:"progress_ms,omitempty"`
}

// Assignment is a step leased to an agent. Attempt is the fencing token:
// reports must carry it. Seq is its delivery sequence number on the
// agent's long-poll in the leader's epoch (a resent assignment gets a new
// one); 0 in the answer to a report.
type Assignment struct {
	TaskID  string `json:"task_id"`
	StepID  string `json:"step_id"`
	Step    string `json:"step"` // the step kind
	Attempt int    `json:"attempt"`
	Seq     uint64 `json:"seq,omitempty"`
	// Task is what the step needs of its task: the request, and the
	// outputs of the steps before it.
	Task AssignedTask `json:"task"`
	// Part, when set, is the part of the step to run (StepID is then the
	// part's id): a split encode's piece, not the whole step.
	Part *Part `json:"part,omitempty"`
}

// AssignedTask is what an agent is told of a step's task: its request and
// the outputs of its steps so far. Its fields are the task object's, under
// the same names (an agent of the version before reads it as one).
type AssignedTask struct {
	ID      string           `json:"id"`
	Kind    encoders.Kind    `json:"kind"`
	Input   string           `json:"input"`
	Output  *string          `json:"output"`
	Options encoders.Options `json:"options"`
	Steps   []AssignedStep   `json:"steps"`
	// S3 holds the credentials of the project's connections for the
	// buckets of the input or the output, only in the assignment of a
	// step that reads or writes them; the agent keeps them in memory for
	// the step and never writes them anywhere.
	S3 []S3Access `json:"s3,omitempty"`
}

// S3Access is one bucket and the credentials that reach it.
type S3Access struct {
	Bucket          string `json:"bucket"`
	Endpoint        string `json:"endpoint,omitempty"`
	Region          string `json:"region,omitempty"`
	PathStyle       bool   `json:"path_style,omitempty"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// String never shows the secret (a struct printed in a log line or an
// error).
func (a S3Access) String() string {
	return "S3Access{bucket " + a.Bucket + ", endpoint " + a.Endpoint + ", key id " + a.AccessKeyID + "}"
}

// GoString is String, for %#v.
func (a S3Access) GoString() string { return a.String() }

// AssignedStep is one step of an AssignedTask.
type AssignedStep struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	Output json.RawMessage `json:"output,omitempty"`
	// Parts are a split step's parts: where each finished, with which
	// attempt (the stitch reads their files).
	Parts []Part `json:"parts,omitempty"`
}

// Assigned returns what an agent is told of t.
func (t *Task) Assigned() AssignedTask {
	a := AssignedTask{ID: t.ID, Kind: t.Kind, Input: t.Input, Output: t.Output, Options: t.Options, Steps: make([]AssignedStep, len(t.Steps))}
	for i, s := range t.Steps {
		a.Steps[i] = AssignedStep{ID: s.ID, Kind: s.Kind, Output: s.Output, Parts: s.Parts}
	}
	return a
}

// Assignments answers GET /internal/nodes/{name}/assignments. The query
// carries what the agent has received (epoch, seq: Received); the answer
// the leader's epoch.
type Assignments struct {
	Epoch       string       `json:"epoch,omitempty"`
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
	// Continue: the agent takes the task's next step in the answer, when
	// the leader gives it there (the step's files are on this node).
	Continue bool `json:"continue,omitempty"`
}

// ReportReply answers a report: recorded, and, when the report asked to
// continue, the task's next step leased to the same agent (with the
// leader's epoch, as a poll's answer).
type ReportReply struct {
	Status string `json:"status"`
	Assignments
}

// NodeInfo describes an agent: GET /internal/nodes.
type NodeInfo struct {
	Name         string                `json:"name"`
	Status       string                `json:"status"`
	Slots        int                   `json:"slots"`
	Running      int                   `json:"running"`
	Capabilities []encoders.Capability `json:"capabilities"`
	LastSeenMs   int64                 `json:"last_seen_ms,omitempty"`
	// Steps are the steps (and parts) it runs now; only in GET /fleet.
	Steps []NodeStep `json:"steps,omitempty"`
}

// NodeStep is a step or part an agent runs, with its progress (0–1).
type NodeStep struct {
	Task     string  `json:"task"`
	Step     string  `json:"step"`
	Kind     string  `json:"kind"`
	Part     *int    `json:"part,omitempty"`
	Attempt  int     `json:"attempt"`
	Progress float64 `json:"progress"`
}

// Fleet is GET /fleet: the control plane's servers, the agents, the steps
// ready to run by kind, and the media seconds the fleet encoded per second
// over the last ten minutes (5 s points, oldest first).
type Fleet struct {
	Object     string         `json:"object"` // "fleet"
	Servers    []ServerInfo   `json:"servers"`
	Agents     []NodeInfo     `json:"agents"`
	Queue      map[string]int `json:"queue"`
	Throughput []RatePoint    `json:"throughput"`
}

// ServerInfo is a server of the control plane as the leader sees it.
type ServerInfo struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	Leader   bool   `json:"leader"`
	// Health is ok when the server answered /healthz just now, down
	// otherwise; AppliedIndex is the last Raft entry it applied.
	Health       string `json:"health"`
	AppliedIndex uint64 `json:"applied_index"`
}

// RatePoint is one point of a rate's history: from At (unix ms), Value per
// second.
type RatePoint struct {
	At    int64   `json:"at"`
	Value float64 `json:"value"`
}
