package state

import (
	"encoding/json"
	"strconv"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/jsonobj"
)

// Seed is a new task as the leader stamps it: its ids and time and the
// request. The log carries seeds, not whole tasks (a quarter of the bytes
// to write, replicate and decode); Task makes the task from one, the same
// on every node.
type Seed struct {
	ID       string          `json:"id"`
	StepIDs  []string        `json:"step_ids"`
	At       int64           `json:"at"` // epoch ms
	Kind     encoders.Kind   `json:"kind"`
	Input    string          `json:"input"`
	Output   string          `json:"output,omitempty"`
	Options  json.RawMessage `json:"options,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Project is the project of the key that asked for the task ("" for
	// the operator's keys).
	Project string `json:"project,omitempty"`
	// Priority is low, normal or high; "": normal.
	Priority string `json:"priority,omitempty"`
}

// Task builds the task a seed describes: queued, with its four steps
// waiting.
func (s Seed) Task() api.Task {
	t := api.Task{
		ID: s.ID, Object: "task", Kind: s.Kind, Input: s.Input, Metadata: s.Metadata,
		Status: api.TaskQueued, CreatedAt: s.At, UpdatedAt: s.At, Project: s.Project, Priority: s.Priority,
	}
	if len(s.Options) > 0 {
		t.Options = decodeOptions(s.Options)
	}
	if s.Output != "" {
		out := s.Output
		t.Output = &out
	}
	if len(t.Metadata) == 0 {
		t.Metadata = json.RawMessage("{}")
	}
	kinds := api.StepKinds(s.Kind)
	t.Steps = make([]api.Step, 0, len(kinds))
	for i, kind := range kinds {
		id := ""
		if i < len(s.StepIDs) {
			id = s.StepIDs[i]
		}
		t.Steps = append(t.Steps, api.Step{
			ID: id, Object: "step", Kind: kind, Options: json.RawMessage("{}"),
			Status: api.StepWaiting, CreatedAt: s.At, UpdatedAt: s.At,
		})
	}
	return t
}

// decodeOptions decodes the options of a seed (the leader's validated
// form), each time into memory of its own.
func decodeOptions(raw []byte) encoders.Options {
	o, _ := encoders.ReadOptions(raw) // Options keeps what it cannot read
	return o.Clone()
}

// appendOptionsJSON appends what the options of a seed write in its task:
// Options.AppendJSON of them decoded ({} for none).
func appendOptionsJSON(b, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		var none encoders.Options
		return none.AppendJSON(b)
	}
	js, err := encoders.OptionsJSON(raw)
	return append(b, js...), err
}

// AppendTaskJSON appends the JSON of the task the seed describes: byte for
// byte what Task().AppendJSON appends (TestSeedTaskJSON), without building
// the task and its steps. A create is answered with it, on the leader and
// on the follower that took the request, and snapshots write it.
func (s *Seed) AppendTaskJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = jsonobj.AppendString(b, s.ID)
	b = append(b, `,"object":"task","kind":`...)
	b = jsonobj.AppendString(b, string(s.Kind))
	b = append(b, `,"input":`...)
	b = jsonobj.AppendString(b, s.Input)
	b = append(b, `,"output":`...)
	if s.Output == "" {
		b = append(b, "null"...)
	} else {
		b = jsonobj.AppendString(b, s.Output)
	}
	b = append(b, `,"options":`...)
	if b, err = appendOptionsJSON(b, s.Options); err != nil {
		return b, err
	}
	b = append(b, `,"metadata":`...)
	switch string(s.Metadata) {
	case "":
		b = append(b, "{}"...) // as Task sets it
	case "null", "{}", "[]":
		b = append(b, s.Metadata...)
	default:
		// As a json.RawMessage field writes it: compacted and checked.
		m, err := json.Marshal(s.Metadata)
		if err != nil {
			return b, err
		}
		b = append(b, m...)
	}
	b = append(b, `,"status":"queued","error":null,"steps":[`...)
	for i, kind := range api.StepKinds(s.Kind) {
		if i > 0 {
			b = append(b, ',')
		}
		id := ""
		if i < len(s.StepIDs) {
			id = s.StepIDs[i]
		}
		b = append(b, `{"id":`...)
		b = jsonobj.AppendString(b, id)
		b = append(b, `,"object":"step","kind":`...)
		b = jsonobj.AppendString(b, kind)
		b = append(b, `,"input":null,"options":{},"output":null,"status":"waiting","progress":null,"error":null,"created_at":`...)
		b = strconv.AppendInt(b, s.At, 10)
		b = append(b, `,"started_at":null,"finished_at":null,"updated_at":`...)
		b = strconv.AppendInt(b, s.At, 10)
		b = append(b, `,"node":null,"attempt":0,"parts":null}`...)
	}
	b = append(b, `],"created_at":`...)
	b = strconv.AppendInt(b, s.At, 10)
	b = append(b, `,"started_at":null,"finished_at":null,"updated_at":`...)
	b = strconv.AppendInt(b, s.At, 10)
	if s.Project != "" {
		b = append(b, `,"project":`...)
		b = jsonobj.AppendString(b, s.Project)
	}
	if s.Priority != "" {
		b = append(b, `,"priority":`...)
		b = jsonobj.AppendString(b, s.Priority)
	}
	return append(b, '}'), nil
}

// SeedRequest is a CreateRequest in the log's compact form.
type SeedRequest struct {
	Seed     Seed   `json:"seed"`
	Scope    string `json:"scope"`
	Key      string `json:"key"`
	BodyHash string `json:"body_hash"`
}

// Request returns the CreateRequest the seed stands for.
func (r SeedRequest) Request() CreateRequest {
	return CreateRequest{Task: r.Seed.Task(), Scope: r.Scope, Key: r.Key, BodyHash: r.BodyHash}
}

// seededTask is a new task kept as its seed until its first change. A
// queued task nobody has touched is whole in its seed: Seed.Task builds
// it, the same on every node. Built on every node as each create applied,
// a task and its four steps and runs were 2 KiB of a create's 4.6 KiB of
// allocation in the state machine and of a queued task's live heap, on
// nodes that may never read it; kept as its seed it costs its strings.
// Readers build the task when they read it (asTask); its first change
// (a lease, a cancel) stores the task whole, as any change does.
type seededTask struct {
	Seed
	// Seq is the commit order (Task.Seq).
	Seq uint64
}

// task builds the stored task the seed stands for: queued, its first
// step ready since its creation, as CreateTasks stores a new task.
func (t *seededTask) task() *Task {
	return newStored(t.Seed.Task(), t.Seq)
}

// newStored is a new task as stored: queued, its first step ready since
// its creation.
func newStored(task api.Task, seq uint64) *Task {
	t := &Task{Task: task, Seq: seq, Runs: make([]StepRun, len(task.Steps))}
	if len(t.Runs) > 0 {
		t.Runs[0].ReadyAt = t.CreatedAt
	}
	return t
}

// MarshalJSON writes the task whole, as a snapshot holds a live task.
func (t *seededTask) MarshalJSON() ([]byte, error) { return json.Marshal(t.task()) }
