package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

func newTask(id string, kind encoders.Kind, now int64) api.Task {
	t := api.Task{ID: id, Object: "task", Kind: kind, Input: "https://example.com/a.mov", Status: api.TaskQueued, CreatedAt: now, UpdatedAt: now}
	for i, k := range api.StepKinds(kind) {
		t.Steps = append(t.Steps, api.Step{ID: fmt.Sprintf("step_%s_%d", id, i), Object: "step", Kind: k, Status: api.StepWaiting, CreatedAt: now, UpdatedAt: now})
	}
	return t
}

func mustCreate(t *testing.T, s *Store, index uint64, ids ...string) {
	t.Helper()
	var reqs []CreateRequest
	for _, id := range ids {
		kind := encoders.KindVideo
		if id[len(id)-1]%2 == 0 {
			kind = encoders.KindAudio
		}
		reqs = append(reqs, CreateRequest{Task: newTask(id, kind, 1000), Scope: "req", Key: "k-" + id, BodyHash: "h"})
	}
	for _, r := range s.CreateTasks(index, 1000, reqs) {
		if r.Task == nil || r.Replayed || r.Conflict {
			t.Fatalf("create: %+v", r)
		}
	}
}

func ids(ts []*api.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func TestListCursors(t *testing.T) {
	s := New()
	mustCreate(t, s, 10, "t1", "t2", "t3")
	mustCreate(t, s, 11, "t4", "t5")
	tests := []struct {
		name string
		q    ListQuery
		want []string
		more bool
	}{
		{"newest first", ListQuery{Limit: 2}, []string{"t5", "t4"}, true},
		{"after, desc", ListQuery{Limit: 2, After: "t4"}, []string{"t3", "t2"}, true},
		{"last page", ListQuery{Limit: 2, After: "t2"}, []string{"t1"}, false},
		{"before, desc", ListQuery{Limit: 2, Before: "t2"}, []string{"t4", "t3"}, true},
		{"before the first", ListQuery{Limit: 2, Before: "t4"}, []string{"t5"}, false},
		{"oldest first", ListQuery{Limit: 3, Order: Asc}, []string{"t1", "t2", "t3"}, true},
		{"after, asc", ListQuery{Limit: 3, Order: Asc, After: "t3"}, []string{"t4", "t5"}, false},
		{"before, asc", ListQuery{Limit: 2, Order: Asc, Before: "t4"}, []string{"t2", "t3"}, true},
		{"kind filter", ListQuery{Limit: 10, Kind: encoders.KindAudio}, []string{"t4", "t2"}, false},
		{"status filter", ListQuery{Limit: 10, Status: api.TaskCompleted}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, more, err := s.ListTasks(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" || more != tc.more {
				t.Errorf("ids (-want +got):\n%s\nhas_more %v, want %v", diff, more, tc.more)
			}
		})
	}
	if _, _, err := s.ListTasks(ListQuery{Limit: 1, After: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown cursor: got %v", err)
	}
}

func TestRequestKeys(t *testing.T) {
	s := New()
	req := CreateRequest{Task: newTask("a", encoders.KindVideo, 0), Scope: "idem:key1", Key: "order-1", BodyHash: "h1"}
	first := s.CreateTasks(1, 0, []CreateRequest{req})[0]
	again := req
	again.Task = newTask("b", encoders.KindVideo, 5)
	replay := s.CreateTasks(2, 5, []CreateRequest{again})[0]
	if !replay.Replayed || replay.Task.ID != first.Task.ID {
		t.Errorf("replay: got %+v, want the original task a", replay)
	}
	other := again
	other.BodyHash = "h2"
	if r := s.CreateTasks(3, 6, []CreateRequest{other})[0]; !r.Conflict {
		t.Errorf("same key, other body: got %+v, want a conflict", r)
	}
	// The conflict and the replay left the key its first request.
	if r := s.CreateTasks(3, 6, []CreateRequest{again})[0]; !r.Replayed || r.Task.ID != first.Task.ID {
		t.Errorf("replay after a conflict: got %+v, want the original task a", r)
	}
	other.Scope = "idem:key2"
	if r := s.CreateTasks(4, 7, []CreateRequest{other})[0]; r.Task == nil || r.Replayed {
		t.Errorf("same key under another API key: got %+v, want a new task", r)
	}
	// Within one batch, a retried request appears twice: one task.
	dup := CreateRequest{Task: newTask("c", encoders.KindVideo, 8), Scope: "req", Key: "r1", BodyHash: "h"}
	dup2 := dup
	dup2.Task = newTask("d", encoders.KindVideo, 8)
	rs := s.CreateTasks(5, 8, []CreateRequest{dup, dup2})
	if rs[0].Task.ID != "c" || !rs[1].Replayed || rs[1].Task.ID != "c" {
		t.Errorf("duplicate in a batch: %+v", rs)
	}
	// After 24 h the key is forgotten.
	// (order-1 under key1 and the request id r1; order-1 under key2 is 7 ms younger.)
	later := int64(IdempotencyTTL + 1)
	if n := s.ExpireRequests(later); n != 2 {
		t.Errorf("expired %d keys, want 2", n)
	}
	again.Task = newTask("e", encoders.KindVideo, later)
	if r := s.CreateTasks(6, later, []CreateRequest{again})[0]; r.Replayed || r.Task.ID != "e" {
		t.Errorf("expired key: got %+v, want a new task", r)
	}
}

func TestCancel(t *testing.T) {
	s := New()
	mustCreate(t, s, 1, "t1")
	got, err := s.CancelTask("t1", 2000)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != api.TaskCancelled || got.FinishedAt == nil || *got.FinishedAt != 2000 {
		t.Errorf("cancelled task %+v", got)
	}
	for _, st := range got.Steps {
		if st.Status != api.StepCancelled {
			t.Errorf("step %s is %s", st.Kind, st.Status)
		}
	}
	if _, err := s.CancelTask("t1", 3000); !errors.Is(err, ErrTaskFinished) {
		t.Errorf("second cancel: %v", err)
	}
	if _, err := s.CancelTask("nope", 3000); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown task: %v", err)
	}
	if list, _, _ := s.ListTasks(ListQuery{Limit: 5, Status: api.TaskCancelled}); len(list) != 1 {
		t.Errorf("status index not updated: %v", ids(list))
	}
}

// TestCancelRetried: a cancel whose answer was lost is sent again with
// the same request id; it is answered as its first try was, where another
// request's cancel of the same task is task_finished, as is the same
// request once its id is forgotten.
func TestCancelRetried(t *testing.T) {
	s := New()
	mustCreate(t, s, 1, "t1")
	req := RequestKey{Scope: "req:cancel:k", Key: "r1"}
	if _, err := s.CancelRequest("t1", 2000, req); err != nil {
		t.Fatal(err)
	}
	got, err := s.CancelRequest("t1", 2500, req)
	if err != nil || got.Status != api.TaskCancelled || *got.FinishedAt != 2000 {
		t.Errorf("the same request again: %v, %+v", err, got)
	}
	if _, err := s.CancelRequest("t1", 2500, RequestKey{Scope: "req:cancel:k", Key: "r2"}); !errors.Is(err, ErrTaskFinished) {
		t.Errorf("another request: %v, want ErrTaskFinished", err)
	}
	// The task keeps the mark of the request that cancelled it, not a
	// request record: it holds as long as the task, and through a
	// snapshot.
	if got, err := s.CancelRequest("t1", 2000+2*RequestTTL, req); err != nil || got.Status != api.TaskCancelled {
		t.Errorf("the same request much later: %v, %+v", err, got)
	}
	if r, ok := s.reqs.Load().get(&Request{Scope: req.Scope, Key: req.Key}); ok {
		t.Errorf("a cancel stored a request record: %+v", r)
	}
	r := restored(t, s)
	if _, err := r.CancelRequest("t1", 3000, req); err != nil {
		t.Errorf("the same request after a snapshot: %v", err)
	}
	if _, err := r.CancelRequest("t1", 3000, RequestKey{Scope: "req:cancel:other", Key: "r1"}); !errors.Is(err, ErrTaskFinished) {
		t.Errorf("the same id from another key: %v, want ErrTaskFinished", err)
	}
	if r.Hash() != s.Hash() {
		t.Errorf("restored state differs")
	}

	// Cancels applied before the mark kept a request record (snapshots
	// written then still hold them): it answers until it expires.
	mustCreate(t, s, 3, "t2")
	if _, err := s.CancelTask("t2", 4000); err != nil {
		t.Fatal(err)
	}
	old := RequestKey{Scope: "req:cancel:k", Key: "r-old"}
	s.reqs.Load().put(&Request{Scope: old.Scope, Key: old.Key, TaskID: "t2", CreatedAt: 4000})
	if _, err := s.CancelRequest("t2", 4500, old); err != nil {
		t.Errorf("the same request, recorded the old way: %v", err)
	}
	if _, err := s.CancelRequest("t2", 4000+RequestTTL, old); !errors.Is(err, ErrTaskFinished) {
		t.Errorf("the old way's record after it expired: %v, want ErrTaskFinished", err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	s := New()
	mustCreate(t, s, 1, "t1", "t2")
	mustCreate(t, s, 2, "t3")
	s.UpsertServer(Server{ID: "n1", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"})
	if _, err := s.CancelTask("t2", 5); err != nil {
		t.Fatal(err)
	}
	r := restored(t, s)
	if r.Hash() != s.Hash() || r.CountTasks() != 3 {
		t.Errorf("restored state differs: %d tasks", r.CountTasks())
	}
	if srv, ok := r.Server("n1"); !ok || srv.HTTPAddr != "127.0.0.1:2" {
		t.Errorf("server %+v", srv)
	}
	// Keys survive too: a replay after restore is still a replay.
	res := r.CreateTasks(9, 10, []CreateRequest{{Task: newTask("x", encoders.KindVideo, 10), Scope: "req", Key: "k-t1", BodyHash: "h"}})
	if !res[0].Replayed {
		t.Errorf("key lost in the snapshot: %+v", res[0])
	}
	if got, _, _ := r.ListTasks(ListQuery{Limit: 1, Status: api.TaskCancelled}); len(got) != 1 || got[0].ID != "t2" {
		t.Errorf("status index after restore: %v", ids(got))
	}
	if err := New().Restore(bytes.NewReader([]byte(`{"t":"version","v":99}` + "\n"))); err == nil {
		t.Error("restored an unknown snapshot version")
	}
	// Every line is what a JSON encoder writes for its record (the lines
	// are framed by hand), HTML-like characters included.
	meta := New()
	task := newTask("m", encoders.KindVideo, 1)
	task.Metadata = json.RawMessage(`{"note":"<b>&</b>"}`)
	meta.CreateTasks(1, 1, []CreateRequest{{Task: task, Scope: "req", Key: "k", BodyHash: "h"}})
	var buf bytes.Buffer
	if _, err := meta.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(rec)
		if !bytes.Equal(line, want.Bytes()) {
			t.Errorf("snapshot line\n%s\nwant what the encoder writes\n%s", line, want.Bytes())
		}
	}
}

// TestRequestIDTTL: the request ids servers make (scope "req:<api key
// id>", as the API writes it) are remembered for an hour, client
// Idempotency-Keys ("idem:<api key id>") for a day.
func TestRequestIDTTL(t *testing.T) {
	s := New()
	const apiKeyID = "0123456789ab"
	r1 := CreateRequest{Task: newTask("a", encoders.KindVideo, 0), Scope: "req:" + apiKeyID, Key: "r1", BodyHash: "h"}
	r2 := CreateRequest{Task: newTask("b", encoders.KindVideo, 0), Scope: "req:" + apiKeyID, Key: "r2", BodyHash: "h"}
	idem := CreateRequest{Task: newTask("c", encoders.KindVideo, 0), Scope: "idem:" + apiKeyID, Key: "order-1", BodyHash: "h"}
	s.CreateTasks(1, 0, []CreateRequest{r1, r2, idem})

	hourLater := int64(RequestTTL)
	retry := r1
	retry.Task = newTask("d", encoders.KindVideo, hourLater)
	if r := s.CreateTasks(2, hourLater, []CreateRequest{retry})[0]; r.Replayed {
		t.Errorf("a request id an hour old still replays task %s", r.Task.ID)
	}
	if n := s.ExpireRequests(hourLater); n != 1 {
		t.Errorf("an hour later %d keys expired, want 1 (request id r2)", n)
	}
	again := idem
	again.Task = newTask("e", encoders.KindVideo, hourLater)
	if r := s.CreateTasks(3, hourLater, []CreateRequest{again})[0]; !r.Replayed || r.Task.ID != "c" {
		t.Errorf("an Idempotency-Key an hour old: got %+v, want a replay of c", r)
	}
}

// restored returns a new store restored from a snapshot of s.
func restored(t *testing.T, s *Store) *Store {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	return r
}
