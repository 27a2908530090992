package state

import (
	"strconv"

	"github.com/ittybit-oss/ittybit/controlplane/api"

	"github.com/ittybit-oss/ittybit/internal/jsonobj"
)

// The JSON of the records a snapshot holds many of, written by hand,
// byte for byte what json.Marshal writes for them (snapshot.go,
// appendRecord).

// appendJSON appends the task as stored: its public fields, then its
// sequence number and the scheduler's runs.
func (t *Task) appendJSON(b []byte) ([]byte, error) {
	b, err := t.Task.AppendJSON(b)
	if err != nil {
		return b, err
	}
	b = append(b[:len(b)-1], `,"seq":`...) // in the public object
	b = strconv.AppendUint(b, t.Seq, 10)
	if len(t.Runs) > 0 {
		b = append(b, `,"runs":`...)
		b = appendRuns(b, t.Runs)
	}
	return append(b, '}'), nil
}

// appendJSON appends the task the seed stands for as stored (what
// t.task().appendJSON appends) without building it: its runs are those
// of a new task, the first step ready since its creation.
func (t *seededTask) appendJSON(b []byte) ([]byte, error) {
	b, err := t.Seed.AppendTaskJSON(b)
	if err != nil {
		return b, err
	}
	b = append(b[:len(b)-1], `,"seq":`...)
	b = strconv.AppendUint(b, t.Seq, 10)
	if n := len(api.StepKinds(t.Kind)); n > 0 {
		b = append(b, `,"runs":[`...)
		if t.At != 0 {
			b = append(b, `{"ready_at":`...)
			b = strconv.AppendInt(b, t.At, 10)
			b = append(b, '}')
		} else {
			b = append(b, "{}"...)
		}
		for range n - 1 {
			b = append(b, ",{}"...)
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendRuns appends steps' scheduling state (every field omitempty).
func appendRuns(b []byte, runs []StepRun) []byte {
	b = append(b, '[')
	for i := range runs {
		if i > 0 {
			b = append(b, ',')
		}
		r := &runs[i]
		n := len(b)
		field := func(name string) {
			if len(b) > n {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), name...), `":`...)
		}
		b = append(b, '{')
		n = len(b)
		if r.Failures != 0 {
			field("failures")
			b = strconv.AppendInt(b, int64(r.Failures), 10)
		}
		if r.NotBefore != 0 {
			field("not_before")
			b = strconv.AppendInt(b, r.NotBefore, 10)
		}
		if r.ReadyAt != 0 {
			field("ready_at")
			b = strconv.AppendInt(b, r.ReadyAt, 10)
		}
		if r.Holder != "" {
			field("holder")
			b = jsonobj.AppendString(b, r.Holder)
		}
		if r.Avoid != "" {
			field("avoid")
			b = jsonobj.AppendString(b, r.Avoid)
		}
		if r.Issued != 0 {
			field("issued")
			b = strconv.AppendInt(b, int64(r.Issued), 10)
		}
		if len(r.Parts) > 0 {
			field("parts")
			b = appendRuns(b, r.Parts)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSON appends the request key record.
func (r *Request) appendJSON(b []byte) []byte {
	b = append(b, `{"scope":`...)
	b = jsonobj.AppendString(b, r.Scope)
	b = append(b, `,"key":`...)
	b = jsonobj.AppendString(b, r.Key)
	b = append(b, `,"body_hash":`...)
	b = jsonobj.AppendString(b, r.BodyHash)
	b = append(b, `,"task_id":`...)
	b = jsonobj.AppendString(b, r.TaskID)
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, r.CreatedAt, 10)
	return append(b, '}')
}

// appendJSON appends a task's event as MarshalJSON writes it (its
// eventRecord); an event with an endpoint goes through MarshalJSON.
func (e *Event) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"type":`...)
	b = jsonobj.AppendString(b, string(e.Type))
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, e.CreatedAt, 10)
	if e.Step != "" {
		b = append(b, `,"step":`...)
		b = jsonobj.AppendString(b, e.Step)
	}
	if e.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
	}
	var err error
	switch t := e.task.(type) {
	case *Task:
		b = append(b, `,"task":`...)
		b, err = t.Task.AppendJSON(b)
	case *seededTask:
		b = append(b, `,"task":`...)
		b, err = t.Seed.AppendTaskJSON(b)
	case *coldTask:
		// Frozen from json.Marshal's output: compact and escaped as a
		// json.RawMessage field writes it.
		var data []byte
		if data, err = t.json(); err == nil {
			b = append(append(b, `,"task":`...), data...)
		}
	}
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}
