package api

import (
	"encoding/json"

	"github.com/ittybit-oss/ittybit/encoders"
)

// TaskStatus is where a task is: queued → processing → completed | failed |
// cancelled.
type TaskStatus string

// Task statuses.
const (
	TaskQueued     TaskStatus = "queued"
	TaskProcessing TaskStatus = "processing"
	TaskCompleted  TaskStatus = "completed"
	TaskFailed     TaskStatus = "failed"
	TaskCancelled  TaskStatus = "cancelled"
)

// Finished reports whether the task has ended.
func (s TaskStatus) Finished() bool {
	return s == TaskCompleted || s == TaskFailed || s == TaskCancelled
}

// StepStatus is where a step is: waiting → queued → processing → completed
// | failed | cancelled.
type StepStatus string

// Step statuses.
const (
	StepWaiting    StepStatus = "waiting"
	StepQueued     StepStatus = "queued"
	StepProcessing StepStatus = "processing"
	StepCompleted  StepStatus = "completed"
	StepFailed     StepStatus = "failed"
	StepCancelled  StepStatus = "cancelled"
)

// Step kinds besides the encode kinds (video, audio, image, adaptive_video).
const (
	StepProbe  = "probe"
	StepIngest = "ingest"
	StepUpload = "upload"
)

// StepKinds returns the steps of a task of kind k, in order.
func StepKinds(k encoders.Kind) []string {
	return []string{StepProbe, StepIngest, string(k), StepUpload}
}

// Task is the task object of the API. Times are Unix epoch milliseconds.
type Task struct {
	ID         string           `json:"id"`
	Object     string           `json:"object"`
	Kind       encoders.Kind    `json:"kind"`
	Input      string           `json:"input"`
	Output     *string          `json:"output"`
	Options    encoders.Options `json:"options"`
	Metadata   json.RawMessage  `json:"metadata"`
	Status     TaskStatus       `json:"status"`
	Error      *Error           `json:"error"`
	Steps      []Step           `json:"steps"`
	CreatedAt  int64            `json:"created_at"`
	StartedAt  *int64           `json:"started_at"`
	FinishedAt *int64           `json:"finished_at"`
	UpdatedAt  int64            `json:"updated_at"`
}

// Step is one stage of a task's pipeline. Node and Attempt are additions to
// the public shape: the agent that ran it and which try this is.
type Step struct {
	ID         string          `json:"id"`
	Object     string          `json:"object"`
	Kind       string          `json:"kind"`
	Input      json.RawMessage `json:"input"`
	Options    json.RawMessage `json:"options"`
	Output     json.RawMessage `json:"output"`
	Status     StepStatus      `json:"status"`
	Progress   *float64        `json:"progress"`
	Error      *Error          `json:"error"`
	CreatedAt  int64           `json:"created_at"`
	StartedAt  *int64          `json:"started_at"`
	FinishedAt *int64          `json:"finished_at"`
	UpdatedAt  int64           `json:"updated_at"`
	Node       *string         `json:"node"`
	Attempt    int             `json:"attempt"`
}

// CreateTaskRequest is the body of POST /tasks.
type CreateTaskRequest struct {
	Input    string           `json:"input"`
	Kind     encoders.Kind    `json:"kind"`
	Options  encoders.Options `json:"options,omitzero"`
	Output   string           `json:"output,omitempty"`
	Metadata json.RawMessage  `json:"metadata,omitempty"`
}

// List is a page of a listing.
type List[T any] struct {
	Object  string `json:"object"` // "list"
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
}
