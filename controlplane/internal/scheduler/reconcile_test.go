package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// pollAck polls for one assignment, acknowledging rcv.
func pollAck(t *testing.T, d *Dispatcher, node string, rcv api.Received) (api.Assignment, api.Received) {
	t.Helper()
	out, err := d.Assignments(context.Background(), node, 5*time.Second, rcv)
	if err != nil || len(out.Assignments) != 1 {
		t.Fatalf("assignments for %s: %v %+v", node, err, out)
	}
	a := out.Assignments[0]
	return a, api.Received{Epoch: out.Epoch, Seq: a.Seq}
}

// TestHeartbeatReleasesWhatTheAgentDropped: an agent that acknowledged a
// step and no longer lists it (it ended and the report was lost) has it
// released at its next heartbeat; the step runs elsewhere and the lost
// attempt's late report is refused.
func TestHeartbeatReleasesWhatTheAgentDropped(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindAudio, "")
	first, rcv := pollAck(t, d, "a", api.Received{})
	register(t, d, "b")
	reply, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Received: rcv})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(reply.Cancel, first.StepID) {
		t.Errorf("heartbeat reply %+v: the dropped step is not in Cancel", reply)
	}
	second := poll(t, d, "b")
	if second.StepID != first.StepID || second.Attempt != 2 {
		t.Fatalf("after the release: %s attempt %d on b, want the probe, attempt 2", second.Step, second.Attempt)
	}
	if _, err := d.Report(context.Background(), first.StepID, api.StepReport{TaskID: id, Attempt: 1, Outcome: api.OutcomeCompleted, Output: json.RawMessage(`{}`)}); !errors.Is(err, ErrStale) {
		t.Errorf("late report of attempt 1: %v, want ErrStale", err)
	}
	task, _ := st.TaskRecord(id)
	if task.Runs[0].Failures != 0 {
		t.Errorf("a release counted %d failures, want none", task.Runs[0].Failures)
	}
}

// TestHeartbeatKeepsWhatIsOnItsWay: a step leased after the heartbeat's
// acknowledgement (its answer is on the way) or listed is not released.
func TestHeartbeatKeepsWhatIsOnItsWay(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	addTask(t, st, d, encoders.KindAudio, "")
	a1, rcv := pollAck(t, d, "a", api.Received{})
	addTask(t, st, d, encoders.KindAudio, "")
	a2, _ := pollAck(t, d, "a", rcv) // delivered, not yet acknowledged
	reply, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Received: rcv, Running: []api.RunningStep{{StepID: a1.StepID, Attempt: 1}}})
	if err != nil || len(reply.Cancel) != 0 {
		t.Fatalf("heartbeat: %+v %v, want nothing cancelled", reply, err)
	}
	for _, a := range []api.Assignment{a1, a2} {
		if _, ok := d.Progress(a.StepID); !ok {
			t.Errorf("%s lost its lease", a.StepID)
		}
	}
}

// TestLostAnswerIsSentAgain: a poll whose acknowledgement shows that the
// last answer never arrived gets the same assignment again.
func TestLostAnswerIsSentAgain(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	addTask(t, st, d, encoders.KindVideo, "")
	first, rcv := pollAck(t, d, "a", api.Received{})
	lost := api.Received{Epoch: rcv.Epoch, Seq: rcv.Seq - 1}
	again, _ := pollAck(t, d, "a", lost)
	if again.StepID != first.StepID || again.Attempt != first.Attempt || again.Seq <= first.Seq {
		t.Fatalf("sent again: %+v, want %s attempt %d with a later seq", again, first.StepID, first.Attempt)
	}
}

// TestUndeliveredRunsElsewhere: a lease its agent never takes in is
// released after the delivery timeout and runs on another node.
func TestUndeliveredRunsElsewhere(t *testing.T) {
	// A timeout long enough for b to register first, however loaded the
	// machine: with a alone, the released step would go back to a.
	d, st := mustDispatcher(t, Config{DeliveryTimeout: time.Second})
	register(t, d, "a")
	addTask(t, st, d, encoders.KindImage, "")
	first := poll(t, d, "a") // its answer is lost: never acknowledged
	register(t, d, "b")
	second := poll(t, d, "b")
	if second.StepID != first.StepID || second.Attempt != 2 {
		t.Fatalf("on b: %s attempt %d, want attempt 2 of %s", second.Step, second.Attempt, first.Step)
	}
}

// TestReportThatNeverArrives: a step its agent lists as reporting for
// longer than the report timeout is released, the agent told to stop it,
// and the report, when it comes, refused.
func TestReportThatNeverArrives(t *testing.T) {
	d, st := mustDispatcher(t, Config{ReportTimeout: time.Second}) // b registers first, as above
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindImage, "")
	first, rcv := pollAck(t, d, "a", api.Received{})
	reporting := api.Heartbeat{Received: rcv, Running: []api.RunningStep{{StepID: first.StepID, Attempt: 1, Progress: 1, Reporting: true}}}
	if _, err := d.Heartbeat(context.Background(), "a", reporting); err != nil {
		t.Fatal(err)
	}
	register(t, d, "b")
	second := poll(t, d, "b")
	if second.StepID != first.StepID || second.Attempt != 2 {
		t.Fatalf("on b: %s attempt %d, want attempt 2", second.Step, second.Attempt)
	}
	reply, err := d.Heartbeat(context.Background(), "a", reporting)
	if err != nil || !slices.Contains(reply.Cancel, first.StepID) {
		t.Errorf("heartbeat reply %+v %v: want the step cancelled", reply, err)
	}
	if _, err := d.Report(context.Background(), first.StepID, api.StepReport{TaskID: id, Attempt: 1, Outcome: api.OutcomeCompleted, Output: json.RawMessage(`{}`)}); !errors.Is(err, ErrStale) {
		t.Errorf("the late report: %v, want ErrStale", err)
	}
}

// TestReportContinues: a report that asks to continue gets the task's next
// step in its answer, leased to the same node, without a sequence number
// (answers to reports may overtake the long-poll's), and the long-poll
// does not deliver it a second time.
func TestReportContinues(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindVideo, "")
	a, rcv := pollAck(t, d, "a", api.Received{})
	for _, step := range []string{"ingest", "video", "upload"} {
		reply, err := d.Report(context.Background(), a.StepID, api.StepReport{TaskID: id, Attempt: a.Attempt, Outcome: api.OutcomeCompleted,
			Output: json.RawMessage(`{"object":"file","url":"managed://x"}`), Continue: true})
		if err != nil || len(reply.Assignments.Assignments) != 1 {
			t.Fatalf("report of %s: %+v %v, want the %s step in the answer", a.Step, reply, err, step)
		}
		a = reply.Assignments.Assignments[0]
		if a.Step != step || a.Attempt != 1 || a.Seq != 0 || reply.Epoch != rcv.Epoch {
			t.Fatalf("continued with %s attempt %d seq %d (epoch %s), want %s attempt 1, no seq", a.Step, a.Attempt, a.Seq, reply.Epoch, step)
		}
		if out, err := d.Assignments(context.Background(), "a", 50*time.Millisecond, rcv); err != nil || len(out.Assignments) != 0 {
			t.Fatalf("the long-poll also delivered %+v %v", out, err)
		}
		// A heartbeat sent before the answer arrived does not list it: not
		// a reason to release it.
		if reply, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Received: rcv}); err != nil || len(reply.Cancel) != 0 {
			t.Fatalf("heartbeat without the %s step: %+v %v, want nothing cancelled", step, reply, err)
		}
	}
	if _, err := d.Report(context.Background(), a.StepID, api.StepReport{TaskID: id, Attempt: 1, Outcome: api.OutcomeCompleted,
		Output: json.RawMessage(`{"object":"file","url":"s3://b/out.mp4"}`), Continue: true}); err != nil {
		t.Fatal(err)
	}
	task, _ := st.TaskRecord(id)
	if task.Status != "completed" {
		t.Fatalf("task %s, want completed", task.Status)
	}
}

// quickStore is a memStore whose agent finishes each step the moment its
// lease commits, before the dispatcher that proposed the lease has
// looked at the result.
type quickStore struct{ memStore }

func (q *quickStore) StepUpdates(ctx context.Context, ups []state.StepUpdate) ([]state.StepResult, error) {
	res := q.st.ApplyStepUpdates(ups)
	for i, u := range ups {
		if u.Op == state.OpAssign && res[i].Err == "" {
			q.st.ApplyStepUpdates([]state.StepUpdate{{Op: state.OpComplete, TaskID: u.TaskID, StepID: u.StepID, Attempt: u.Attempt,
				Now: u.Now, Output: json.RawMessage(`{"object":"file","url":"s3://b/o"}`)}})
		}
	}
	return res, nil
}

// TestQuickAgentLeavesNoLease: a step that ends before its scheduling
// pass has read the commit's result leaves no lease behind (a lease left
// so would later be "released", a step its node finished long ago).
func TestQuickAgentLeavesNoLease(t *testing.T) {
	st := state.New()
	d := New(Config{Store: &quickStore{memStore{st: st}}, MinHeartbeatTTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.Until(t, "dispatcher active", 10*time.Second, d.Active)
	register(t, d, "a")
	id := addTask(t, st, d, encoders.KindImage, "")
	wait.Until(t, "the task to complete", 10*time.Second, func() bool {
		task, _ := st.TaskRecord(id)
		return task.Status == "completed"
	})
	task, _ := st.TaskRecord(id)
	for _, s := range task.Steps {
		if _, ok := d.Progress(s.ID); ok {
			t.Errorf("the %s step, completed, still has a lease", s.Kind)
		}
	}
}

// TestLostContinuationRunsElsewhere: the answer that carried a report's
// continuation is lost; the step is released after the delivery timeout
// and runs elsewhere.
func TestLostContinuationRunsElsewhere(t *testing.T) {
	d, st := mustDispatcher(t, Config{DeliveryTimeout: 200 * time.Millisecond})
	register(t, d, "a")
	lost, rcv := continued(t, d, st) // its answer never arrives
	// b is there before the release: placement only disfavours a, the
	// node that lost the step, so with a alone it would go back to a.
	register(t, d, "b")
	if _, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Received: rcv}); err != nil {
		t.Fatal(err)
	}
	b := poll(t, d, "b")
	if b.StepID != lost.StepID || b.Attempt != 2 {
		t.Fatalf("on b: %s attempt %d, want %s attempt 2", b.Step, b.Attempt, lost.Step)
	}
}

// TestDroppedContinuationReleased: a continuation the agent took in,
// listed, then dropped (its report was lost and it gave up) is released
// at the next heartbeat that does not list it.
func TestDroppedContinuationReleased(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	register(t, d, "a")
	next, rcv := continued(t, d, st)
	held := api.Heartbeat{Received: rcv, Running: []api.RunningStep{{StepID: next.StepID, Attempt: 1}}}
	if r, err := d.Heartbeat(context.Background(), "a", held); err != nil || len(r.Cancel) != 0 {
		t.Fatalf("heartbeat holding it: %+v %v", r, err)
	}
	register(t, d, "b") // before the release, as above
	if r, err := d.Heartbeat(context.Background(), "a", api.Heartbeat{Received: rcv}); err != nil || !slices.Contains(r.Cancel, next.StepID) {
		t.Fatalf("heartbeat without it: %+v %v, want it released", r, err)
	}
	if b := poll(t, d, "b"); b.StepID != next.StepID || b.Attempt != 2 {
		t.Fatalf("on b: %s attempt %d, want %s attempt 2", b.Step, b.Attempt, next.Step)
	}
}

// continued runs an audio task's probe on node "a" and reports it asking
// to continue; it returns the continuation and what "a" acknowledged.
func continued(t *testing.T, d *Dispatcher, st *state.Store) (api.Assignment, api.Received) {
	t.Helper()
	id := addTask(t, st, d, encoders.KindAudio, "")
	a, rcv := pollAck(t, d, "a", api.Received{})
	reply, err := d.Report(context.Background(), a.StepID, api.StepReport{TaskID: id, Attempt: 1, Outcome: api.OutcomeCompleted,
		Output: json.RawMessage(`{}`), Continue: true})
	if err != nil || len(reply.Assignments.Assignments) != 1 {
		t.Fatalf("report: %+v %v", reply, err)
	}
	return reply.Assignments.Assignments[0], rcv
}
