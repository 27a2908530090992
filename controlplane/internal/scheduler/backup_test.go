package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// straggling splits a task's encode step on agents a and b and completes
// every part but one video part: the straggler, returned with its node.
func straggling(t *testing.T, d *Dispatcher, id string) (api.Assignment, string) {
	t.Helper()
	complete(t, d, pollOne(t, d, "a", "b"), probed)
	complete(t, d, pollOne(t, d, "a", "b"), `{"url":"managed://tasks/x/source"}`)
	var running []api.Assignment
	var nodes []string
	for len(running) < 4 {
		for _, n := range []string{"a", "b"} {
			out, err := d.Assignments(context.Background(), n, 100*time.Millisecond, api.Received{})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range out.Assignments {
				running, nodes = append(running, a), append(nodes, n)
			}
		}
	}
	k := slices.IndexFunc(running, func(a api.Assignment) bool { return a.Part.Kind == api.PartVideo })
	for j, a := range running {
		if j != k {
			complete(t, d, a, `{}`)
		}
	}
	return running[k], nodes[k]
}

// TestBackupOfStraggler: a part that runs far longer than its step's
// other parts gets a backup copy on an idle agent, with the next attempt;
// the first copy to finish wins and the other is told to stop.
func TestBackupOfStraggler(t *testing.T) {
	for _, backupWins := range []bool{true, false} {
		name := map[bool]string{true: "backup wins", false: "first copy wins"}[backupWins]
		t.Run(name, func(t *testing.T) {
			d, st := mustDispatcher(t, Config{SplitSeconds: 4, SplitMinSeconds: 10, StragglerMin: 300 * time.Millisecond})
			register(t, d, "a")
			register(t, d, "b")
			id := addTask(t, st, d, encoders.KindVideo, "")
			slow, at := straggling(t, d, id)
			other := map[string]string{"a": "b", "b": "a"}[at]
			// The straggler reports a little progress; a backup follows on
			// the idle agent.
			if _, err := d.Heartbeat(context.Background(), at, api.Heartbeat{Running: []api.RunningStep{{StepID: slow.StepID, Attempt: 1, Progress: 0.05}}}); err != nil {
				t.Fatal(err)
			}
			backup := poll(t, d, other)
			if backup.StepID != slow.StepID || backup.Attempt != 2 || backup.Part == nil || backup.Part.Index != slow.Part.Index {
				t.Fatalf("backup %+v, want part %s attempt 2", backup, slow.StepID)
			}
			task, _ := st.TaskRecord(id)
			p := task.Steps[2].Parts[slow.Part.Index]
			if p.Backup == nil || p.Backup.Node != other || p.Backup.Attempt != 2 || *p.Node != at || p.Attempt != 1 {
				t.Fatalf("part with its backup: %+v", p)
			}
			if got := testutil.ToFloat64(d.cfg.Metrics.BackupsStarted); got != 1 {
				t.Errorf("backups started %v, want 1", got)
			}
			win, lose, loser := backup, slow, at
			if !backupWins {
				win, lose, loser = slow, backup, other
			}
			complete(t, d, win, `{}`)
			reply, err := d.Heartbeat(context.Background(), loser, api.Heartbeat{Running: []api.RunningStep{{StepID: lose.StepID, Attempt: lose.Attempt, Progress: 0.5}}})
			if err != nil || !slices.Contains(reply.Cancel, lose.StepID) {
				t.Errorf("the loser's heartbeat: %+v %v, want it cancelled", reply, err)
			}
			if _, err := d.Report(context.Background(), lose.StepID, api.StepReport{Attempt: lose.Attempt, Outcome: api.OutcomeCompleted}); err != ErrStale {
				t.Errorf("the loser's report: %v, want ErrStale", err)
			}
			task, _ = st.TaskRecord(id)
			p = task.Steps[2].Parts[slow.Part.Index]
			// Every part is in: the step is queued for its stitch, or
			// already placed.
			if st := task.Steps[2].Status; p.Status != api.StepCompleted || p.Attempt != win.Attempt || p.Backup != nil || (st != api.StepQueued && st != api.StepProcessing) {
				t.Errorf("after the race: part %+v, step %s", p, task.Steps[2].Status)
			}
			won := 0.0
			if backupWins {
				won = 1
			}
			if got := testutil.ToFloat64(d.cfg.Metrics.BackupsWon); got != won {
				t.Errorf("backups won %v, want %v", got, won)
			}
		})
	}
}

// TestBackupRunsOnWhenTheFirstCopyFails: the first copy's node fails the
// part while its backup runs; the backup is the part's run from then on,
// and no failure is counted.
func TestBackupRunsOnWhenTheFirstCopyFails(t *testing.T) {
	d, st := mustDispatcher(t, Config{SplitSeconds: 4, SplitMinSeconds: 10, StragglerMin: 300 * time.Millisecond})
	register(t, d, "a")
	register(t, d, "b")
	id := addTask(t, st, d, encoders.KindVideo, "")
	slow, at := straggling(t, d, id)
	other := map[string]string{"a": "b", "b": "a"}[at]
	backup := poll(t, d, other)
	if _, err := d.Report(context.Background(), slow.StepID, api.StepReport{Attempt: 1, Outcome: api.OutcomeFailed, Retryable: true, Error: &api.Error{Kind: "encode_failed", Message: "x"}}); err != nil {
		t.Fatal(err)
	}
	task, _ := st.TaskRecord(id)
	p := task.Steps[2].Parts[slow.Part.Index]
	if p.Status != api.StepProcessing || *p.Node != other || p.Attempt != 2 || p.Backup != nil || task.Runs[2].Parts[slow.Part.Index].Failures != 0 {
		t.Fatalf("after the first copy failed: %+v", p)
	}
	// The backup's agent is told to go on with it.
	reply, err := d.Heartbeat(context.Background(), other, api.Heartbeat{Running: []api.RunningStep{{StepID: backup.StepID, Attempt: 2, Progress: 0.5}}})
	if err != nil || slices.Contains(reply.Cancel, backup.StepID) {
		t.Errorf("the backup's heartbeat: %+v %v", reply, err)
	}
	if pr, ok := d.Progress(slow.StepID); !ok || pr != 0.5 {
		t.Errorf("the part's progress %v %v, want the backup's 0.5", pr, ok)
	}
	complete(t, d, backup, `{}`)
	task, _ = st.TaskRecord(id)
	if s := task.Steps[2].Status; s != api.StepQueued && s != api.StepProcessing { // queued for the stitch, or placed
		t.Errorf("step %s after the backup completed", task.Steps[2].Status)
	}
}

// TestNoBackupWhenOff: a negative factor turns backups off.
func TestNoBackupWhenOff(t *testing.T) {
	d, st := mustDispatcher(t, Config{SplitSeconds: 4, SplitMinSeconds: 10, StragglerFactor: -1, StragglerMin: 100 * time.Millisecond})
	register(t, d, "a")
	register(t, d, "b")
	id := addTask(t, st, d, encoders.KindVideo, "")
	slow, _ := straggling(t, d, id)
	time.Sleep(500 * time.Millisecond)
	task, _ := st.TaskRecord(id)
	if p := task.Steps[2].Parts[slow.Part.Index]; p.Backup != nil {
		t.Errorf("a backup with backups off: %+v", p.Backup)
	}
}
