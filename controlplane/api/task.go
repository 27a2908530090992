package api

import (
	"encoding/json"
	"strconv"
	"strings"

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
	// Project is the project of the key that created the task; absent
	// for tasks of the operator's keys.
	Project string `json:"project,omitempty"`
	// Priority is the task's place in the queue (low, normal, high);
	// absent: normal.
	Priority string `json:"priority,omitempty"`
	// Archived is set on a task read from the archive: it finished longer
	// ago than the servers' --task-retention and left their memory.
	Archived bool `json:"archived,omitempty"`
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
	// Parts are the pieces of a split encode step, each run on its own
	// node; null when the step is not split.
	Parts []Part `json:"parts"`
}

// Part kinds.
const (
	PartVideo = "video" // a run of the picture's frames, without sound
	PartAudio = "audio" // the whole sound track, encoded once
	// PartRendition is one rendition of an HLS ladder: whole, or, with
	// FirstFrame and Frames, a run of its whole segments (a long ladder is
	// split in time as well).
	PartRendition = "rendition"
)

// Part is one piece of a split encode step: a run of the picture's frames
// or the whole sound track, encoded on its own node, then stitched with
// the others by the step. It is leased like a step, with its own attempt.
type Part struct {
	ID     string `json:"id"`
	Object string `json:"object"` // "part"
	Index  int    `json:"index"`
	Kind   string `json:"kind"`
	// Rendition is the index of the HLS rendition a part encodes; null
	// for the parts of a single file.
	Rendition *int `json:"rendition"`
	// Start and End bound the part in seconds of the source.
	Start      float64    `json:"start"`
	End        float64    `json:"end"`
	Status     StepStatus `json:"status"`
	Progress   *float64   `json:"progress"`
	Node       *string    `json:"node"`
	Attempt    int        `json:"attempt"`
	StartedAt  *int64     `json:"started_at"`
	FinishedAt *int64     `json:"finished_at"`
	Error      *Error     `json:"error,omitempty"`
	// Backup is a second copy of the part, started on another node
	// because this one ran far longer than the others: the first of the
	// two to finish wins, and the part then shows the winner's node and
	// attempt. Absent when none runs.
	Backup *PartCopy `json:"backup,omitempty"`
	// FirstFrame and Frames place a video part, or a run of a rendition,
	// among the picture's frames.
	FirstFrame int64 `json:"first_frame,omitempty"`
	Frames     int64 `json:"frames,omitempty"`
}

// PartCopy is a backup copy of a part: where it runs, its attempt (its
// fencing token) and when it began.
type PartCopy struct {
	Node      string `json:"node"`
	Attempt   int    `json:"attempt"`
	StartedAt int64  `json:"started_at"`
}

// RunsAttempt reports whether attempt is one of the copies of a running
// part: its own, or its backup's.
func (p Part) RunsAttempt(attempt int) bool {
	return attempt == p.Attempt || (p.Backup != nil && attempt == p.Backup.Attempt)
}

// PartID is the id of part index of a step.
func PartID(stepID string, index int) string { return stepID + ".p" + strconv.Itoa(index) }

// PartsDone reports whether every one of a split step's parts has
// completed (then the step's own run stitches them).
func PartsDone(parts []Part) bool {
	for _, p := range parts {
		if p.Status != StepCompleted {
			return false
		}
	}
	return true
}

// IsPartID reports whether id names a part (step ids hold no dot).
func IsPartID(id string) bool { return strings.Contains(id, ".p") }

// CreateTaskRequest is the body of POST /tasks.
type CreateTaskRequest struct {
	Input    string           `json:"input"`
	Kind     encoders.Kind    `json:"kind"`
	Options  encoders.Options `json:"options,omitzero"`
	Output   string           `json:"output,omitempty"`
	Metadata json.RawMessage  `json:"metadata,omitempty"`
	// Priority is low, normal or high; absent: the key's (normal for the
	// operator's keys).
	Priority string `json:"priority,omitempty"`
}

// Task priorities, lowest first.
const (
	PriorityLow    = "low"
	PriorityNormal = "normal"
	PriorityHigh   = "high"
)

// Priorities lists the priorities, lowest first.
func Priorities() []string { return []string{PriorityLow, PriorityNormal, PriorityHigh} }

// List is a page of a listing.
type List[T any] struct {
	Object  string `json:"object"` // "list"
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
}

// TaskList is a page of GET /tasks.
type TaskList struct {
	List[*Task]
	// Archive, on a page of the tasks kept in memory, is where the tasks
	// that left it for the archive are listed ("/tasks?archived=true");
	// absent when the servers keep every task.
	Archive string `json:"archive,omitempty"`
}
