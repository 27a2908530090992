package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// memStore applies updates straight to a state, as the FSM would.
type memStore struct{ st *state.Store }

func (m *memStore) State() *state.Store { return m.st }
func (m *memStore) StepUpdates(_ context.Context, ups []state.StepUpdate) ([]state.StepResult, error) {
	return m.st.ApplyStepUpdates(ups), nil
}
func (m *memStore) RegisterNode(_ context.Context, n state.Node) error {
	m.st.RegisterNode(n)
	return nil
}
func (m *memStore) SetNodeStatus(_ context.Context, name string, s state.NodeStatus, now int64) error {
	m.st.SetNodeStatus(name, s, now)
	return nil
}

func mustDispatcher(t *testing.T, cfg Config) (*Dispatcher, *state.Store) {
	t.Helper()
	st := state.New()
	cfg.Store = &memStore{st: st}
	if cfg.MinHeartbeatTTL == 0 {
		cfg.MinHeartbeatTTL = time.Minute
	}
	d := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.Until(t, "dispatcher active", 10*time.Second, d.Active)
	return d, st
}

var seq uint64

func addTask(t *testing.T, st *state.Store, d *Dispatcher, kind encoders.Kind, options string) string {
	t.Helper()
	seq++
	id := fmt.Sprintf("task_%d", seq)
	now := time.Now().UnixMilli()
	task := api.Task{ID: id, Object: "task", Kind: kind, Input: "https://example.com/a.mov", Status: api.TaskQueued, CreatedAt: now, UpdatedAt: now}
	if options != "" {
		json.Unmarshal([]byte(options), &task.Options)
	}
	for i, k := range api.StepKinds(kind) {
		task.Steps = append(task.Steps, api.Step{ID: fmt.Sprintf("%s_s%d", id, i), Object: "step", Kind: k, Status: api.StepWaiting, CreatedAt: now})
	}
	st.CreateTasks(seq, now, []state.CreateRequest{{Task: task, Scope: "req", Key: id, BodyHash: "h"}})
	return id
}

func register(t *testing.T, d *Dispatcher, name string, caps ...encoders.Capability) {
	t.Helper()
	if len(caps) == 0 {
		caps = sw("h264", "h265", "vp9", "av1")
	}
	if _, err := d.Register(context.Background(), api.NodeRegistration{Name: name, Slots: 2, Capabilities: caps, Parts: true}); err != nil {
		t.Fatal(err)
	}
}

func poll(t *testing.T, d *Dispatcher, node string) api.Assignment {
	t.Helper()
	out, err := d.Assignments(context.Background(), node, 5*time.Second, api.Received{})
	if err != nil || len(out.Assignments) != 1 {
		t.Fatalf("assignments for %s: %v %+v", node, err, out)
	}
	return out.Assignments[0]
}

func complete(t *testing.T, d *Dispatcher, a api.Assignment, output string) {
	t.Helper()
	if _, err := d.Report(context.Background(), a.StepID, api.StepReport{Attempt: a.Attempt, Outcome: api.OutcomeCompleted, Output: json.RawMessage(output)}); err != nil {
		t.Fatalf("complete %s: %v", a.Step, err)
	}
}

func TestDispatchRunsATaskThrough(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindVideo, "")
	for _, step := range []string{"probe", "ingest", "video", "upload"} {
		a := poll(t, d, "a")
		if a.Step != step || a.Attempt != 1 || a.TaskID != id {
			t.Fatalf("got assignment %s attempt %d, want %s attempt 1", a.Step, a.Attempt, step)
		}
		if _, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Running: []api.RunningStep{{StepID: a.StepID, Attempt: 1, Progress: 0.5}}}); err != nil {
			t.Fatal(err)
		}
		if p, ok := d.Progress(a.StepID); !ok || p != 0.5 {
			t.Errorf("progress %v %v, want 0.5 from the heartbeat", p, ok)
		}
		complete(t, d, a, `{"object":"file","url":"managed://tasks/`+id+`/output.mp4"}`)
	}
	task, _ := st.TaskRecord(id)
	if task.Status != api.TaskCompleted || task.Output == nil || *task.Output != "managed://tasks/"+id+"/output.mp4" {
		t.Errorf("task %s output %v", task.Status, task.Output)
	}
}

func TestStaleReportRejected(t *testing.T) {
	d, st := mustDispatcher(t, Config{DeliveryTimeout: 100 * time.Millisecond})
	register(t, d, "a")
	addTask(t, st, d, encoders.KindAudio, "")
	first := poll(t, d, "a")
	// Never confirmed by a heartbeat: released and given out again.
	second := poll(t, d, "a")
	if second.StepID != first.StepID || second.Attempt != 2 {
		t.Fatalf("redelivery: got %s attempt %d", second.Step, second.Attempt)
	}
	_, err := d.Report(context.Background(), first.StepID, api.StepReport{Attempt: first.Attempt, Outcome: api.OutcomeCompleted, Output: json.RawMessage(`{}`)})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("late report of attempt 1: got %v, want ErrStale", err)
	}
	complete(t, d, second, `{}`)
}

func TestNodeLossRequeuesOnAnotherNode(t *testing.T) {
	d, st := mustDispatcher(t, Config{MinHeartbeatTTL: 200 * time.Millisecond, HeartbeatGrace: 100 * time.Millisecond})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindVideo, "")
	a := poll(t, d, "a")
	d.Heartbeat(context.Background(), "a", api.Heartbeat{Running: []api.RunningStep{{StepID: a.StepID, Attempt: 1}}})
	register(t, d, "b")
	// "a" falls silent; "b" keeps beating.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				d.Heartbeat(context.Background(), "b", api.Heartbeat{})
			}
		}
	}()
	b := poll(t, d, "b")
	if b.StepID != a.StepID || b.Attempt != 2 {
		t.Fatalf("got %s attempt %d on b, want the probe again, attempt 2", b.Step, b.Attempt)
	}
	task, _ := st.TaskRecord(id)
	if task.Steps[0].Error == nil || task.Steps[0].Error.Kind != "stalled" {
		t.Errorf("step error %+v, want stalled", task.Steps[0].Error)
	}
	if n, _ := st.Node("a"); n.Status != state.NodeDown {
		t.Errorf("node a is %s, want down", n.Status)
	}
}

func TestRetriesThenFails(t *testing.T) {
	d, st := mustDispatcher(t, Config{Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindImage, "")
	for attempt := 1; attempt <= state.MaxFailures; attempt++ {
		a := poll(t, d, "a")
		if a.Attempt != attempt {
			t.Fatalf("attempt %d, want %d", a.Attempt, attempt)
		}
		_, err := d.Report(context.Background(), a.StepID, api.StepReport{Attempt: a.Attempt, Outcome: api.OutcomeFailed,
			Error: &api.Error{Kind: "fetch_failed", Message: fmt.Sprintf("try %d", attempt)}, Retryable: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	task, _ := st.TaskRecord(id)
	if task.Status != api.TaskFailed || task.Error == nil || task.Error.Message != "try 3" {
		t.Fatalf("task %s error %+v, want failed with the last error", task.Status, task.Error)
	}
	if task.Steps[1].Status != api.StepCancelled {
		t.Errorf("later steps: %s", task.Steps[1].Status)
	}
}

func TestCancelStopsTheAgent(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindVideo, "")
	a := poll(t, d, "a")
	if _, err := st.CancelTask(id, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	reply, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Running: []api.RunningStep{{StepID: a.StepID, Attempt: 1}}})
	if err != nil || len(reply.Cancel) != 1 || reply.Cancel[0] != a.StepID {
		t.Fatalf("heartbeat reply %+v %v, want the step cancelled", reply, err)
	}
}

func TestRebuildOnLeadership(t *testing.T) {
	st := state.New()
	d1 := New(Config{Store: &memStore{st: st}, MinHeartbeatTTL: time.Minute})
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan struct{})
	go func() { defer close(done1); d1.Run(ctx1) }()
	wait.Until(t, "first leader", 10*time.Second, d1.Active)
	register(t, d1, "a")
	addTask(t, st, d1, encoders.KindVideo, "")
	a := poll(t, d1, "a")
	id2 := addTask(t, st, d1, encoders.KindAudio, "")
	// The first leader assigns the second probe (a scheduling pass after
	// the create) but never delivers it: stop it only once it has.
	wait.Until(t, "the second probe assigned", 10*time.Second, func() bool {
		tr, ok := st.TaskRecord(id2)
		return ok && tr.Steps[0].Attempt == 1
	})
	cancel1()
	<-done1
	// A new leader over the same state: the running step keeps its lease;
	// the step the old leader assigned but never delivered is released and
	// given out again.
	d2 := New(Config{Store: &memStore{st: st}, MinHeartbeatTTL: time.Minute, DeliveryTimeout: 200 * time.Millisecond})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go d2.Run(ctx2)
	wait.Until(t, "second leader", 10*time.Second, d2.Active)
	if _, err := d2.Heartbeat(context.Background(), "a", api.Heartbeat{Running: []api.RunningStep{{StepID: a.StepID, Attempt: 1, Progress: 0.3}}}); err != nil {
		t.Fatal(err)
	}
	if p, ok := d2.Progress(a.StepID); !ok || p != 0.3 {
		t.Errorf("lease lost in the rebuild: %v %v", p, ok)
	}
	b := poll(t, d2, "a")
	if b.TaskID != id2 || b.Attempt != 2 {
		t.Errorf("got %s attempt %d, want the undelivered probe again, attempt 2", b.TaskID, b.Attempt)
	}
	if p, ok := d2.Progress(a.StepID); !ok || p != 0.3 {
		t.Errorf("the confirmed lease was released: %v %v", p, ok)
	}
}

func TestLateReportAfterTheTaskEnded(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindAudio, "")
	var first api.Assignment
	for i, step := range []string{"probe", "ingest", "audio", "upload"} {
		a := poll(t, d, "a")
		if i == 0 {
			first = a
		}
		complete(t, d, a, `{"url":"s3://b/`+step+`"}`)
	}
	_, err := d.Report(context.Background(), first.StepID, api.StepReport{TaskID: id, Attempt: 1, Outcome: api.OutcomeCompleted, Output: json.RawMessage(`{}`)})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("got %v, want ErrStale", err)
	}
}
