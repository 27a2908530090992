package api

import (
	"encoding/json"
	"strconv"

	"github.com/ittybit-oss/ittybit/internal/jsonobj"
)

// AppendJSON appends the task's JSON, byte for byte what encoding/json
// writes for it (json.Marshal; an Encoder adds a newline), without the
// reflection: every POST /tasks answers with a task, and encoding/json
// took 6 % of a loaded leader's CPU doing it. The fields it writes itself
// are the task's, its steps' and its options' scalars and plain strings;
// anything else (a string to escape, metadata, an error, the parts of a
// split step) goes through encoding/json one value at a time. Its tests
// hold it to json.Marshal.
func (t *Task) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = jsonobj.AppendString(b, t.ID)
	b = append(b, `,"object":`...)
	b = jsonobj.AppendString(b, t.Object)
	b = append(b, `,"kind":`...)
	b = jsonobj.AppendString(b, string(t.Kind))
	b = append(b, `,"input":`...)
	b = jsonobj.AppendString(b, t.Input)
	b = append(b, `,"output":`...)
	b = appendStringPtr(b, t.Output)
	b = append(b, `,"options":`...)
	if b, err = t.Options.AppendJSON(b); err != nil {
		return b, err
	}
	b = append(b, `,"metadata":`...)
	if b, err = appendRaw(b, t.Metadata); err != nil {
		return b, err
	}
	b = append(b, `,"status":`...)
	b = jsonobj.AppendString(b, string(t.Status))
	b = append(b, `,"error":`...)
	if b, err = appendError(b, t.Error); err != nil {
		return b, err
	}
	b = append(b, `,"steps":`...)
	if t.Steps == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range t.Steps {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = t.Steps[i].appendJSON(b); err != nil {
				return b, err
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, t.CreatedAt, 10)
	b = append(b, `,"started_at":`...)
	b = appendIntPtr(b, t.StartedAt)
	b = append(b, `,"finished_at":`...)
	b = appendIntPtr(b, t.FinishedAt)
	b = append(b, `,"updated_at":`...)
	b = strconv.AppendInt(b, t.UpdatedAt, 10)
	if t.Project != "" {
		b = append(b, `,"project":`...)
		b = jsonobj.AppendString(b, t.Project)
	}
	if t.Priority != "" {
		b = append(b, `,"priority":`...)
		b = jsonobj.AppendString(b, t.Priority)
	}
	if t.Archived {
		b = append(b, `,"archived":true`...)
	}
	return append(b, '}'), nil
}

func (s *Step) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = jsonobj.AppendString(b, s.ID)
	b = append(b, `,"object":`...)
	b = jsonobj.AppendString(b, s.Object)
	b = append(b, `,"kind":`...)
	b = jsonobj.AppendString(b, s.Kind)
	b = append(b, `,"input":`...)
	if b, err = appendRaw(b, s.Input); err != nil {
		return b, err
	}
	b = append(b, `,"options":`...)
	if b, err = appendRaw(b, s.Options); err != nil {
		return b, err
	}
	b = append(b, `,"output":`...)
	if b, err = appendRaw(b, s.Output); err != nil {
		return b, err
	}
	b = append(b, `,"status":`...)
	b = jsonobj.AppendString(b, string(s.Status))
	b = append(b, `,"progress":`...)
	if s.Progress == nil {
		b = append(b, "null"...)
	} else if b, err = jsonobj.AppendFloat(b, *s.Progress); err != nil {
		return b, err
	}
	b = append(b, `,"error":`...)
	if b, err = appendError(b, s.Error); err != nil {
		return b, err
	}
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, s.CreatedAt, 10)
	b = append(b, `,"started_at":`...)
	b = appendIntPtr(b, s.StartedAt)
	b = append(b, `,"finished_at":`...)
	b = appendIntPtr(b, s.FinishedAt)
	b = append(b, `,"updated_at":`...)
	b = strconv.AppendInt(b, s.UpdatedAt, 10)
	b = append(b, `,"node":`...)
	b = appendStringPtr(b, s.Node)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(s.Attempt), 10)
	b = append(b, `,"parts":`...)
	if s.Parts == nil {
		b = append(b, "null"...)
	} else if b, err = appendMarshal(b, s.Parts); err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendRaw appends raw JSON as encoding/json writes a json.RawMessage:
// null when nil, and otherwise compacted, HTML escaped and checked (an
// empty one is an error); the bare values a task's steps hold most are
// taken as they are.
func appendRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	switch string(raw) {
	case "null", "{}", "[]":
		return append(b, raw...), nil
	}
	return appendMarshal(b, raw)
}

// appendMarshal appends v through encoding/json.
func appendMarshal(b []byte, v any) ([]byte, error) {
	out, err := json.Marshal(v)
	return append(b, out...), err
}

// appendError appends an error through encoding/json, and null for none
// without it.
func appendError(b []byte, e *Error) ([]byte, error) {
	if e == nil {
		return append(b, "null"...), nil
	}
	return appendMarshal(b, e)
}

func appendStringPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return jsonobj.AppendString(b, *s)
}

func appendIntPtr(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *n, 10)
}
