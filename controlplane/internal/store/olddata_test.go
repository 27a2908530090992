package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// Data folders written by earlier releases, each with what that release
// served from it (served.json). A release must read every entry and
// snapshot an earlier one wrote: these are never rewritten, only added
// to. ITTYBIT_WRITE_DATA_FOLDER=testdata/datafolders/NAME writes a new one
// with this release's code (writeDataFolder), for the next release to
// read.
var oldDataFolders = []string{
	// Release 8e226e7: JSON entries (create_seeds, step and part
	// updates, cancel with its request, webhooks, retire_tasks v2, …) and
	// a snapshot with events and cold tasks in the middle of them.
	"testdata/datafolders/8e226e7",
	// 090f406: the same history (writeHistory), written by the first
	// release with its log in raft-wal (wal/, segments of 256 KiB here).
	"testdata/datafolders/090f406",
}

// served is what a node serves from its state, as compared across
// releases.
type served struct {
	Tasks     []json.RawMessage `json:"tasks"`
	Events    []json.RawMessage `json:"events"`
	Endpoints []json.RawMessage `json:"endpoints"`
	Nodes     []json.RawMessage `json:"nodes"`
	Meta      map[string]string `json:"meta"`
}

func serve(t *testing.T, s *state.Store) served {
	t.Helper()
	var out served
	enc := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	q := state.ListQuery{Limit: 100, Order: state.Asc}
	for {
		page, more, err := s.ListTasks(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range page {
			out.Tasks = append(out.Tasks, enc(task))
		}
		if !more {
			break
		}
		q.After = page[len(page)-1].ID
	}
	events, _, err := s.Events(state.EventQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		out.Events = append(out.Events, enc(e))
	}
	for _, e := range s.Endpoints() {
		out.Endpoints = append(out.Endpoints, enc(e))
	}
	for _, n := range s.Nodes() {
		out.Nodes = append(out.Nodes, enc(n))
	}
	out.Meta = map[string]string{}
	if v, ok := s.Meta(metaKeyFixture); ok {
		out.Meta[metaKeyFixture] = v
	}
	return out
}

const metaKeyFixture = "fixture"

// TestOldDataFolders: a node started on a data folder an earlier release
// wrote serves what that release served from it.
func TestOldDataFolders(t *testing.T) {
	for _, dir := range oldDataFolders {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, "served.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want served
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			if err := os.CopyFS(work, os.DirFS(filepath.Join(dir, "node"))); err != nil {
				t.Fatal(err)
			}
			cfg := Config{NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: work,
				HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond}
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			wait.Until(t, "leadership on the old data", 20*time.Second, s.LeaderReady)
			got := serve(t, s.State())
			if diff := cmp.Diff(normal(t, want), normal(t, got)); diff != "" {
				t.Errorf("served differently from the release that wrote it (-then +now):\n%s", diff)
			}
			// And it takes new writes on top.
			create(t, s, 1, "new")
			if n := s.State().CountTasks(); n != len(want.Tasks)+1 {
				t.Errorf("%d tasks after one more, want %d", n, len(want.Tasks)+1)
			}
			withNew := serve(t, s.State())
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// A raft-boltdb log was copied into raft-wal once: the next
			// start reads the copy, the new write included.
			if _, err := os.Stat(filepath.Join(work, "raft.db")); err == nil {
				t.Error("raft.db is still there, to be read again")
			}
			s, err = Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			wait.Until(t, "leadership again", 20*time.Second, s.LeaderReady)
			wait.Until(t, "every task again", 20*time.Second, func() bool { return s.State().CountTasks() == len(want.Tasks)+1 })
			if diff := cmp.Diff(normal(t, withNew), normal(t, serve(t, s.State()))); diff != "" {
				t.Errorf("served differently after a restart on the migrated log (-then +now):\n%s", diff)
			}
		})
	}
}

// normal decodes the JSON of v into plain values, so that the comparison
// ignores field order and spacing but nothing else.
func normal(t *testing.T, v served) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWriteDataFolder writes, with this release's code, the data folder
// named by $ITTYBIT_WRITE_DATA_FOLDER and what it serves from it: a
// history that uses every entry type this release writes, with a
// snapshot in the middle. Run it before a release changes the log's
// format, and add the folder to oldDataFolders.
func TestWriteDataFolder(t *testing.T) {
	out := os.Getenv("ITTYBIT_WRITE_DATA_FOLDER")
	if out == "" {
		t.Skip("set ITTYBIT_WRITE_DATA_FOLDER to write a data folder for later releases to read")
	}
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "node")
	s, err := Open(Config{NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: dir, Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		SnapshotThreshold: 1 << 20, EventLimit: 1000, LogSegmentBytes: 256 << 10}) // small segments: the folder is committed
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	writeHistory(t, s, 0)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	writeHistory(t, s, 1) // after the snapshot: replayed from the log
	got := serve(t, s.State())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(got, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "served.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeHistory commits, through the store's API, one round of every
// kind of write: tasks of each kind created (with options, metadata, an
// Idempotency-Key), run to each end (completed, failed, cancelled by a
// request, split into parts with a backup copy), a node registered and
// drained, a server recorded, a webhook endpoint with a delivery
// attempted, request keys expired, events trimmed, finished tasks
// retired, and a meta value set.
func writeHistory(t *testing.T, s *Store, round int) {
	t.Helper()
	ctx := context.Background()
	base := int64(1_700_000_000_000 + round*1_000_000)
	id := func(kind string, n int) string { return kind + "_0" + string(rune('a'+round)) + string(rune('a'+n)) }
	seed := func(n int, kind encoders.Kind, options, metadata string) state.Seed {
		sd := state.Seed{ID: id("task", n), At: base + int64(n), Kind: kind, Input: "https://example.com/in" + string(rune('a'+n)) + ".mov"}
		if options != "" {
			sd.Options = json.RawMessage(options)
		}
		if metadata != "" {
			sd.Metadata = json.RawMessage(metadata)
		}
		if kind == encoders.KindVideo {
			sd.Output = "s3://bucket/out" + string(rune('a'+n)) + ".mp4"
		}
		for j := range api.StepKinds(kind) {
			sd.StepIDs = append(sd.StepIDs, id("step", n*4+j))
		}
		return sd
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.WebhookOps(ctx, []state.WebhookOp{{Op: state.WebhookCreate, Now: base, Endpoint: &state.Endpoint{
		ID: id("ep", 0), URL: "https://hooks.example.com/in", Events: []string{"*"}, Description: "every event",
		Secrets: []state.Secret{{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: base, UpdatedAt: base,
	}}})
	must(err)
	res, err := s.CreateTasks(ctx, []state.SeedRequest{
		{Seed: seed(0, encoders.KindVideo, `{"width":1280,"height":720,"format":"mp4","quality":"high"}`, `{"customer":"ünï","n":[1,2]}`), Scope: "idem:k1", Key: "order-1" + id("", 0), BodyHash: "h0"},
		{Seed: seed(1, encoders.KindAudio, `{"format":"mp3"}`, ""), Scope: "req:k1", Key: "r1" + id("", 0), BodyHash: "h1"},
		{Seed: seed(2, encoders.KindImage, `{"width":320,"format":"webp"}`, ""), Scope: "req:k1", Key: "r2" + id("", 0), BodyHash: "h2"},
		{Seed: seed(3, encoders.KindAdaptive, "", ""), Scope: "req:k1", Key: "r3" + id("", 0), BodyHash: "h3"},
		{Seed: seed(4, encoders.KindVideo, "", ""), Scope: "req:k1", Key: "r4" + id("", 0), BodyHash: "h4"},
	})
	must(err)
	if len(res) != 5 {
		t.Fatalf("%d results", len(res))
	}
	must(s.RegisterNode(ctx, state.Node{Name: "node-a", Slots: 2, Version: "8e226e7", Parts: true, Status: state.NodeReady, RegisteredAt: base, UpdatedAt: base}))
	must(s.UpsertServer(ctx, state.Server{ID: "b", RaftAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:8001"}))
	at := base + 100
	step := func(u state.StepUpdate) {
		t.Helper()
		at++
		u.Now = at
		r, err := s.StepUpdates(ctx, []state.StepUpdate{u})
		must(err)
		if r[0].Err != "" {
			t.Fatalf("%s %s attempt %d: %s", u.Op, u.StepID, u.Attempt, r[0].Err)
		}
	}
	run := func(task string, stepID string, out string) {
		step(state.StepUpdate{Op: state.OpAssign, TaskID: task, StepID: stepID, Attempt: 1, Node: "node-a"})
		step(state.StepUpdate{Op: state.OpComplete, TaskID: task, StepID: stepID, Attempt: 1, Output: json.RawMessage(out)})
	}
	// Task 0: probed, ingested, its encode split into two video parts
	// and the sound, part 1 with a backup copy that wins, stitched and
	// uploaded.
	t0 := id("task", 0)
	run(t0, id("step", 0), `{"duration":20.02,"width":1920,"height":1080,"fps":30,"has_audio":true}`)
	run(t0, id("step", 1), `{"url":"managed://tasks/`+t0+`/source"}`)
	enc := id("step", 2)
	step(state.StepUpdate{Op: state.OpSplit, TaskID: t0, StepID: enc, Parts: []api.Part{
		{ID: api.PartID(enc, 0), Index: 0, Kind: api.PartVideo, End: 10, Frames: 300},
		{ID: api.PartID(enc, 1), Index: 1, Kind: api.PartVideo, Start: 10, End: 20, FirstFrame: 300, Frames: 301},
		{ID: api.PartID(enc, 2), Index: 2, Kind: api.PartAudio, End: 20.02},
	}})
	run(t0, api.PartID(enc, 0), `{}`)
	run(t0, api.PartID(enc, 2), `{}`)
	step(state.StepUpdate{Op: state.OpAssign, TaskID: t0, StepID: api.PartID(enc, 1), Attempt: 1, Node: "node-a"})
	step(state.StepUpdate{Op: state.OpBackup, TaskID: t0, StepID: api.PartID(enc, 1), Attempt: 2, Node: "node-b"})
	step(state.StepUpdate{Op: state.OpComplete, TaskID: t0, StepID: api.PartID(enc, 1), Attempt: 2})
	step(state.StepUpdate{Op: state.OpAssign, TaskID: t0, StepID: enc, Attempt: 1, Node: "node-a"})
	step(state.StepUpdate{Op: state.OpComplete, TaskID: t0, StepID: enc, Attempt: 1,
		Output:  json.RawMessage(`{"object":"file","kind":"video","url":"managed://tasks/` + t0 + `/staging/1/output.mp4","width":1280,"height":720,"duration":20.02}`),
		Options: json.RawMessage(`{"encoder":"libx264","video":{"width":1280,"height":720}}`)})
	step(state.StepUpdate{Op: state.OpAssign, TaskID: t0, StepID: id("step", 3), Attempt: 1, Node: "node-a"})
	step(state.StepUpdate{Op: state.OpComplete, TaskID: t0, StepID: id("step", 3), Attempt: 1, TaskOutput: "s3://bucket/outa.mp4",
		Output: json.RawMessage(`{"object":"file","kind":"video","url":"s3://bucket/outa.mp4","filesize":12345}`)})
	// Task 1: fails for good after its retries, one released.
	t1 := id("task", 1)
	step(state.StepUpdate{Op: state.OpAssign, TaskID: t1, StepID: id("step", 4), Attempt: 1, Node: "node-a"})
	step(state.StepUpdate{Op: state.OpRelease, TaskID: t1, StepID: id("step", 4), Attempt: 1, Avoid: true})
	for a := 2; a <= state.MaxFailures+1; a++ {
		step(state.StepUpdate{Op: state.OpAssign, TaskID: t1, StepID: id("step", 4), Attempt: a, Node: "node-a"})
		step(state.StepUpdate{Op: state.OpFail, TaskID: t1, StepID: id("step", 4), Attempt: a, Retryable: true, Backoff: 10,
			Error: &api.Error{Kind: "invalid_media", Message: "moov atom not found <&>", Field: "input"}})
	}
	// Task 2: cancelled by a request, while its first step runs.
	t2 := id("task", 2)
	step(state.StepUpdate{Op: state.OpAssign, TaskID: t2, StepID: id("step", 8), Attempt: 1, Node: "node-a"})
	_, err = s.CancelTask(ctx, t2, at+1, state.RequestKey{Scope: "req:cancel:k1", Key: "c1" + id("", 0)})
	must(err)
	// Task 3 stays queued; task 4 runs its probe.
	step(state.StepUpdate{Op: state.OpAssign, TaskID: id("task", 4), StepID: id("step", 16), Attempt: 1, Node: "node-a"})
	// A delivery attempted, once failed.
	if ds := s.State().Deliveries(id("ep", 0), 1); len(ds) > 0 {
		_, err = s.WebhookOps(ctx, []state.WebhookOp{{Op: state.WebhookAttempt, Now: at + 2, Delivery: ds[0].ID,
			Attempt: &state.Attempt{At: at + 2, Status: 500, LatencyMs: 12, Result: "failed", Error: "HTTP 500"}, NextAt: at + 5000}})
		must(err)
	}
	must(s.SetNodeStatus(ctx, "node-a", state.NodeDraining, at+3))
	_, err = s.SetMeta(ctx, metaKeyFixture, "round "+string(rune('0'+round)))
	must(err)
	// Request keys past their time to live, then the finished tasks of
	// the round before retired.
	_, err = s.ExpireRequests(ctx, base+state.RequestTTL+1)
	must(err)
	if round > 0 {
		due := s.State().Retirable(base+state.IdempotencyTTL*2, base, 100)
		var r state.Retirement
		for _, d := range due {
			r.IDs = append(r.IDs, d.ID)
			r.Requests = append(r.Requests, d.Requests...)
			r.Events = append(r.Events, d.Events...)
		}
		if len(r.IDs) == 0 {
			t.Fatal("nothing to retire")
		}
		_, err = s.RetireTasks(ctx, r)
		must(err)
	}
}

// TestDamagedOldLogRefused: an earlier release's raft.db that is damaged
// is refused by name before anything is copied from it, and the folder
// is left as it was.
func TestDamagedOldLogRefused(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, path string){
		"cut short":         func(t *testing.T, path string) { truncate(t, path, 0.5) },
		"pages overwritten": func(t *testing.T, path string) { scribble(t, path, 4096*2, 4096*6) },
	} {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			if err := os.CopyFS(work, os.DirFS(filepath.Join(oldDataFolders[0], "node"))); err != nil {
				t.Fatal(err)
			}
			damage(t, filepath.Join(work, "raft.db"))
			s, err := Open(Config{NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: work})
			if err == nil {
				s.Close()
				t.Fatal("started on a damaged raft.db")
			}
			if !strings.Contains(err.Error(), "raft.db") {
				t.Errorf("refused with %q, which does not name raft.db", err)
			}
			if _, err := os.Stat(filepath.Join(work, "wal")); err == nil {
				t.Error("a wal folder was made from the damaged log")
			}
			t.Log(err)
		})
	}
}
