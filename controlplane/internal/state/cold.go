package state

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Finished tasks are kept cold. A live task holds wide structs (the task,
// four steps with their pointers and raw JSON, the scheduler's runs): about
// 2 KiB before its outputs. A finished task is only ever read whole, by id
// or in a list, so it is kept as its JSON, deflated against a dictionary of
// what tasks have in common (S2, with a dictionary: a few microseconds a
// task, where deflate and zstd spend tens resetting their tables), beside the few fields that indexes and list
// filters read: a few hundred bytes. Every node freezes a task in the same
// apply that finishes it; reads thaw a copy.

// coldVersion is the first byte of a frozen task: how the rest is encoded.
// Version 1 is the JSON of api.Task compressed by S2 with coldDict; a
// change of either takes a new version, and thaw keeps reading the old
// ones.
const coldVersion = 1

// coldTask is a finished task, frozen.
type coldTask struct {
	ID     string
	Seq    uint64
	Kind   encoders.Kind
	Status api.TaskStatus
	// CreatedAt and FinishedAt (epoch ms) choose what retires.
	CreatedAt, FinishedAt int64
	// Z is coldVersion and the compressed JSON of the task.
	Z []byte
	// CancelledBy is the task's (Task.CancelledBy).
	CancelledBy RequestMark
	// Project is the task's, for the project index.
	Project string
}

// coldRecord is a frozen task's line in a snapshot.
type coldRecord struct {
	Cold   int            `json:"cold"`
	ID     string         `json:"id"`
	Seq    uint64         `json:"seq"`
	Kind   encoders.Kind  `json:"kind"`
	Status api.TaskStatus `json:"status"`
	// Created and Finished are epoch ms.
	Created  int64  `json:"created"`
	Finished int64  `json:"finished"`
	Z        []byte `json:"z"`
	// CancelledBy is the hex of the task's mark, absent when it has none
	// (and in snapshots written before it).
	CancelledBy string `json:"cancelled_by,omitempty"`
	Project     string `json:"project,omitempty"`
}

// MarshalJSON writes the frozen task as it is, without thawing it.
func (c *coldTask) MarshalJSON() ([]byte, error) {
	r := coldRecord{Cold: coldVersion, ID: c.ID, Seq: c.Seq, Kind: c.Kind, Status: c.Status, Created: c.CreatedAt, Finished: c.FinishedAt, Z: c.Z, Project: c.Project}
	if c.CancelledBy != (RequestMark{}) {
		r.CancelledBy = hex.EncodeToString(c.CancelledBy[:])
	}
	return json.Marshal(r)
}

// isColdRecord reports whether a snapshot line's data is a frozen task.
func isColdRecord(data []byte) bool { return bytes.HasPrefix(data, []byte(`{"cold":`)) }

// readColdRecord reads a frozen task's snapshot line, checking that it
// thaws.
func readColdRecord(data []byte) (*coldTask, error) {
	var r coldRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	c := &coldTask{ID: r.ID, Seq: r.Seq, Kind: r.Kind, Status: r.Status, CreatedAt: r.Created, FinishedAt: r.Finished, Z: r.Z, Project: r.Project}
	if r.CancelledBy != "" {
		if n, err := hex.Decode(c.CancelledBy[:], []byte(r.CancelledBy)); err != nil || n != len(c.CancelledBy) {
			return nil, fmt.Errorf("task %s: cancelled_by %q is not %d bytes of hex", r.ID, r.CancelledBy, len(c.CancelledBy))
		}
	}
	if _, err := c.json(); err != nil {
		return nil, fmt.Errorf("task %s: %w", r.ID, err)
	}
	return c, nil
}

// freeze returns the cold form of a finished task.
func freeze(t *Task) *coldTask {
	data, err := json.Marshal(&t.Task)
	if err != nil {
		panic(fmt.Sprintf("freeze task %s: %v", t.ID, err)) // every field marshals: a bug
	}
	return freezeJSON(t, data)
}

// freezeJSON returns the cold form of a finished task whose JSON is data.
func freezeJSON(t *Task, data []byte) *coldTask {
	z := make([]byte, 1+s2.MaxEncodedLen(len(data)))
	z[0] = coldVersion
	n := len(coldS2.Encode(z[1:], data))
	finished := t.UpdatedAt
	if t.FinishedAt != nil {
		finished = *t.FinishedAt
	}
	return &coldTask{ID: t.ID, Seq: t.Seq, Kind: t.Kind, Status: t.Status, CreatedAt: t.CreatedAt, FinishedAt: finished, Z: bytes.Clone(z[:1+n]), CancelledBy: t.CancelledBy, Project: t.Project}
}

// json returns the task's JSON.
func (c *coldTask) json() ([]byte, error) {
	if len(c.Z) == 0 || c.Z[0] != coldVersion {
		return nil, fmt.Errorf("frozen task of unknown version")
	}
	return coldS2.Decode(nil, c.Z[1:])
}

// thaw returns the task as it was frozen (a new copy: the caller may
// change it).
func (c *coldTask) thaw() (*Task, error) {
	data, err := c.json()
	if err != nil {
		return nil, fmt.Errorf("thaw task %s: %w", c.ID, err)
	}
	t := &Task{Seq: c.Seq, CancelledBy: c.CancelledBy}
	if err := json.Unmarshal(data, &t.Task); err != nil {
		return nil, fmt.Errorf("thaw task %s: %w", c.ID, err)
	}
	t.decoded()
	return t, nil
}

// decoded completes a task decoded from its JSON: raw JSON fields that
// were absent come back as null, and are kept absent, as they were
// stored; the scheduler's runs start empty.
func (t *Task) decoded() {
	for i := range t.Steps {
		st := &t.Steps[i]
		st.Input, st.Options, st.Output = unnull(st.Input), unnull(st.Options), unnull(st.Output)
	}
	t.Metadata = unnull(t.Metadata)
	t.Runs = make([]StepRun, len(t.Steps))
}

func unnull(m json.RawMessage) json.RawMessage {
	if string(m) == "null" {
		return nil
	}
	return m
}

// mustThaw thaws a task frozen by this process (or checked when a
// snapshot was read), so it cannot fail but by a bug.
func (c *coldTask) mustThaw() *Task {
	t, err := c.thaw()
	if err != nil {
		panic(err)
	}
	return t
}

// stored returns the form of t to store: frozen once it has finished.
func stored(t *Task) any {
	if t.Status.Finished() {
		return freeze(t)
	}
	return t
}

// asTask returns a stored task as a Task: the stored value itself when it
// is live (never change it), a thawed copy when it is frozen, one built
// when it is a seed.
func asTask(raw any) *Task {
	switch t := raw.(type) {
	case *Task:
		return t
	case *coldTask:
		return t.mustThaw()
	case *seededTask:
		return t.task()
	}
	panic(fmt.Sprintf("tasks table holds a %T", raw))
}

// taskProject returns a stored task's project.
func taskProject(raw any) string {
	switch t := raw.(type) {
	case *Task:
		return t.Project
	case *coldTask:
		return t.Project
	case *seededTask:
		return t.Project
	}
	panic(fmt.Sprintf("tasks table holds a %T", raw))
}

// taskFields reads what the indexes and list filters need from a stored
// task, live or frozen.
func taskFields(raw any) (id string, seq uint64, kind encoders.Kind, status api.TaskStatus) {
	switch t := raw.(type) {
	case *Task:
		return t.ID, t.Seq, t.Kind, t.Status
	case *coldTask:
		return t.ID, t.Seq, t.Kind, t.Status
	case *seededTask:
		return t.ID, t.Seq, t.Kind, api.TaskQueued
	}
	panic(fmt.Sprintf("tasks table holds a %T", raw))
}

// coldS2 is coldDict made an S2 dictionary, matches starting from the
// task's own opening. Its Encode and Decode are safe for concurrent use.
var coldS2 = s2.MakeDict([]byte(coldDict), []byte(`{"id":"task_`))

// coldDict primes the deflater with what finished tasks have in common, the
// most common last (nearest the data). It is part of coldVersion 1: never
// change it; make a new version instead.
const coldDict = `{"kind":"image","object":"file","url":"managed://tasks/task_/output.webp","width":160,"height":90}` +
	`{"kind":"audio","object":"file","url":"managed://tasks/task_/output.mp3","codec":"mp3","sample_rate":44100,"channels":2}` +
	`"error":{"kind":"invalid_media","message":"","field":""},"error":{"kind":"cancelled","message":"the task was cancelled"},"status":"cancelled",` +
	`"status":"failed","error":{"kind":"encode_failed","message":"ffmpeg exited with status 1: "},"status":"failed","retryable":` +
	`"parts":[{"id":"step_.p0","object":"part","index":0,"kind":"video","rendition":null,"start":0,"end":30,"status":"completed","progress":1,"node":"","attempt":1,"started_at":,"finished_at":,"first_frame":0,"frames":900},` +
	`{"id":"step_.p1","object":"part","index":1,"kind":"audio","rendition":null,"start":0,"end":30,"status":"completed","progress":1,"node":"","attempt":1,"started_at":,"finished_at":}],` +
	`"options":{"format":"mp4","codec":"h264","quality":"high","width":1280,"height":720,"fit":"cover","fps":30,"bitrate":` +
	`"options":{"audio":{"bitrate":128000,"codec":"aac","encoder":"aac"},"backend":"software","duration":,"encoder":"libx264","format":"mp4","kind":"video","plugin":"software","quality":"medium",` +
	`"video":{"codec":"h264","encoder":"libx264","fit":"fill","height":720,"pixel_format":"yuv420p","preset":"fast","rate_control":{"mode":"quality","param":"crf","value":23},"scale_height":720,"scale_width":1280,"width":1280}},` +
	`"output":{"format":"mov","duration":,"width":1920,"height":1080,"fps":30,"codecs":{"video":"h264","audio":"aac"},"has_audio":true,"has_video":true,"filesize":,"rotation":0,"bitrate":,"frames":,"video_duration":,"pixel_format":"yuv420p","frame_rate":"30/1","sample_aspect_ratio":"1:1","audio_channels":2,"sample_rate":48000},` +
	`"output":{"bitrate":,"codec":"h264","duration":,"filesize":,"format":"mp4","fps":30,"height":720,"kind":"video","object":"file","url":"managed://tasks/task_/staging/1/output.mp4","width":1280},` +
	`{"id":"task_","object":"task","kind":"video","input":"https://","output":null,"options":{},"metadata":{},"status":"completed","error":null,"steps":[` +
	`{"id":"step_","object":"step","kind":"probe","input":null,"options":{},"output":{},"status":"completed","progress":1,"error":null,"created_at":,"started_at":,"finished_at":,"updated_at":,"node":"","attempt":1,"parts":null},` +
	`{"id":"step_","object":"step","kind":"ingest","options":{},"output":{"bitrate":,"codec":"h264","duration":,"filesize":,"format":"mov","fps":30,"height":1080,"kind":"video","object":"file","url":"managed://tasks/task_/source","width":1920},"status":"completed","progress":1,"error":null,"created_at":,"started_at":,"finished_at":,"updated_at":,"node":"","attempt":1,"parts":null},` +
	`{"id":"step_","object":"step","kind":"video","input":null,"options":{},"output":{"bitrate":,"codec":"h264","duration":,"filesize":,"format":"mp4","fps":30,"height":720,"kind":"video","object":"file","url":"managed://tasks/task_/output.mp4","width":1280},"status":"completed","progress":1,"error":null,"created_at":,"started_at":,"finished_at":,"updated_at":,"node":"","attempt":1,"parts":null},` +
	`{"id":"step_","object":"step","kind":"upload","input":null,"options":{},"output":{"bitrate":,"codec":"h264","duration":,"filesize":,"format":"mp4","fps":30,"height":720,"kind":"video","object":"file","url":"managed://tasks/task_/output.mp4","width":1280},"status":"completed","progress":1,"error":null,"created_at":,"started_at":,"finished_at":,"updated_at":,"node":"","attempt":1,"parts":null}],"created_at":,"started_at":,"finished_at":,"updated_at":}`
