package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

func anyNode(Ready) bool { return true }

// ids lists candidates as project:step.
func ids(rs []Ready) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.StepID)
	}
	return strings.Join(out, " ")
}

func pushN(q *queue, project string, priority, n int, at int64) {
	for i := range n {
		q.push(Ready{TaskID: fmt.Sprintf("%s-t%d", project, i), StepID: fmt.Sprintf("%s%d", project, i), Kind: "probe", Project: project, Priority: priority, ReadyAt: at + int64(i)})
	}
}

// TestQueueShares: a project's backlog does not hold another project's
// steps back; higher priorities go first; weights share a round; the FIFO
// baseline serves in arrival order.
func TestQueueShares(t *testing.T) {
	t.Run("projects in turn", func(t *testing.T) {
		q := newQueue()
		pushN(q, "a", PriorityNormal, 2000, 0)
		pushN(q, "b", PriorityNormal, 3, 5000)
		if got := ids(q.candidates(0, 6, anyNode)); got != "a0 b0 a1 b1 a2 b2" {
			t.Errorf("candidates %q", got)
		}
		// The next pass starts with the other project.
		q.remove("a0")
		q.remove("b0")
		if got := ids(q.candidates(0, 2, anyNode)); got != "b1 a1" {
			t.Errorf("next pass %q", got)
		}
	})
	t.Run("higher priorities first", func(t *testing.T) {
		q := newQueue()
		pushN(q, "a", PriorityNormal, 5, 0)
		pushN(q, "l", PriorityLow, 5, 0)
		pushN(q, "h", PriorityHigh, 2, 100)
		if got := ids(q.candidates(0, 4, anyNode)); got != "h0 h1 a0 a1" {
			t.Errorf("candidates %q", got)
		}
	})
	t.Run("weights", func(t *testing.T) {
		q := newQueue()
		q.weight = func(p string) int { return map[string]int{"a": 3}[p] }
		pushN(q, "a", PriorityNormal, 10, 0)
		pushN(q, "b", PriorityNormal, 10, 0)
		if got := ids(q.candidates(0, 8, anyNode)); got != "a0 a1 a2 b0 a3 a4 a5 b1" {
			t.Errorf("candidates %q", got)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		q := newQueue()
		q.fifo = true
		pushN(q, "a", PriorityNormal, 3, 0)
		pushN(q, "h", PriorityHigh, 2, 100)
		if got := ids(q.candidates(0, 5, anyNode)); got != "a0 a1 a2 h0 h1" {
			t.Errorf("candidates %q", got)
		}
	})
	t.Run("held back, unsupported, removed and requeued", func(t *testing.T) {
		q := newQueue()
		pushN(q, "a", PriorityNormal, 4, 0)
		r := q.items["a0"]
		r.NotBefore = 1000
		q.push(r)
		q.remove("a1")
		noA2 := func(r Ready) bool { return r.StepID != "a2" }
		if got := ids(q.candidates(0, 5, noA2)); got != "a3" {
			t.Errorf("candidates %q", got)
		}
		if got := ids(q.candidates(1000, 5, anyNode)); got != "a0 a2 a3" {
			t.Errorf("later %q", got)
		}
		// Queued again at another priority: served from its new lane, once.
		r = q.items["a3"]
		r.Priority = PriorityHigh
		q.push(r)
		if got := ids(q.candidates(1000, 5, anyNode)); got != "a3 a0 a2" {
			t.Errorf("after a move %q", got)
		}
		for _, id := range []string{"a0", "a2", "a3"} {
			q.remove(id)
		}
		if q.len() != 0 || len(q.lanes) != 0 {
			t.Errorf("an emptied queue holds %d items, %d lanes", q.len(), len(q.lanes))
		}
	})
	t.Run("long queues stay cheap", func(t *testing.T) {
		q := newQueue()
		pushN(q, "a", PriorityNormal, 20000, 0)
		pushN(q, "b", PriorityNormal, 1, 0)
		for i := range 19000 {
			q.remove(fmt.Sprintf("a%d", i))
		}
		if got := ids(q.candidates(0, 2, anyNode)); got != "a19000 b0" {
			t.Errorf("candidates %q", got)
		}
		// The dead entries were passed for good and then dropped.
		if l := q.lanes[laneKey{PriorityNormal, "a"}]; len(l.order)-l.head != 1000 || len(l.order) > 1000 {
			t.Errorf("lane a keeps %d entries from its head %d, want the 1000 live ones", len(l.order), l.head)
		}
	})
}

// TestMaxConcurrentTasks: a project's tasks beyond its cap wait in the
// queue (they are not refused) while another project's run; a running
// task's next steps are never held back by the cap.
func TestMaxConcurrentTasks(t *testing.T) {
	d, st := mustDispatcher(t, Config{})
	st.ApplyAccessOps([]state.AccessOp{
		{Op: state.ProjectCreate, Project: &state.Project{ID: "proj_capped", Name: "capped", MaxConcurrentTasks: 1}},
		{Op: state.ProjectCreate, Project: &state.Project{ID: "proj_free", Name: "free"}},
	})
	add := func(id, project string) {
		now := time.Now().UnixMilli()
		task := api.Task{ID: id, Object: "task", Kind: encoders.KindImage, Input: "https://example.com/a.png", Status: api.TaskQueued, CreatedAt: now, UpdatedAt: now, Project: project}
		for i, k := range api.StepKinds(encoders.KindImage) {
			task.Steps = append(task.Steps, api.Step{ID: fmt.Sprintf("%s_s%d", id, i), Object: "step", Kind: k, Status: api.StepWaiting, CreatedAt: now})
		}
		seq++
		st.CreateTasks(seq, now, []state.CreateRequest{{Task: task, Scope: "req", Key: id, BodyHash: "h"}})
	}
	add("c1", "proj_capped")
	add("c2", "proj_capped")
	add("f1", "proj_free")
	register(t, d, "a") // two slots
	var rcv api.Received
	next := func(wait time.Duration) []api.Assignment {
		t.Helper()
		out, err := d.Assignments(context.Background(), "a", wait, rcv)
		if err != nil {
			t.Fatal(err)
		}
		rcv.Epoch = out.Epoch
		for _, a := range out.Assignments {
			rcv.Seq = max(rcv.Seq, a.Seq)
		}
		return out.Assignments
	}
	got := map[string]api.Assignment{}
	for len(got) < 2 {
		for _, a := range next(5 * time.Second) {
			got[a.TaskID] = a
		}
	}
	_, c1 := got["c1"]
	_, c2 := got["c2"]
	if _, f1 := got["f1"]; !f1 || c1 == c2 {
		t.Fatalf("the first two assignments are of %v: want f1 and one capped task", got)
	}
	first, other := "c1", "c2"
	if c2 {
		first, other = "c2", "c1"
	}
	if more := next(300 * time.Millisecond); len(more) != 0 {
		t.Fatalf("a third assignment while the cap is reached: %+v", more)
	}
	// The capped task runs through its steps (never held back by the
	// cap); the other waits until it ends, then runs.
	a := got[first]
	for {
		complete(t, d, a, `{"object":"file","url":"managed://tasks/`+first+`/output.jpg"}`)
		if a.Step == "upload" {
			break
		}
		var more []api.Assignment
		for len(more) == 0 {
			more = next(5 * time.Second)
		}
		if more[0].TaskID != first {
			t.Fatalf("got %s's %s while %s runs, want %s's next step", more[0].TaskID, more[0].Step, first, first)
		}
		a = more[0]
	}
	var last []api.Assignment
	for len(last) == 0 {
		last = next(5 * time.Second)
	}
	if last[0].TaskID != other {
		t.Errorf("after %s ended, got %s's %s, want %s", first, last[0].TaskID, last[0].Step, other)
	}
}

// TestQueueByProject: the queue's depth by project names the projects
// with the most queued, up to the bound, and sums the rest.
func TestQueueByProject(t *testing.T) {
	d, st := mustDispatcher(t, Config{MetricProjects: 2})
	n := 0
	for project, count := range map[string]int{"proj_a": 3, "proj_b": 2, "proj_c": 1, "proj_d": 1, "": 2} {
		for range count {
			n++
			now := time.Now().UnixMilli()
			id := fmt.Sprintf("qb%d", n)
			task := api.Task{ID: id, Object: "task", Kind: encoders.KindImage, Input: "https://example.com/a.png", Status: api.TaskQueued, CreatedAt: now, UpdatedAt: now, Project: project}
			for i, k := range api.StepKinds(encoders.KindImage) {
				task.Steps = append(task.Steps, api.Step{ID: fmt.Sprintf("%s_s%d", id, i), Object: "step", Kind: k, Status: api.StepWaiting, CreatedAt: now})
			}
			seq++
			st.CreateTasks(seq, now, []state.CreateRequest{{Task: task, Scope: "req", Key: id, BodyHash: "h"}})
		}
	}
	want := map[string]float64{"proj_a": 3, "proj_b": 2, "other": 2, "none": 2}
	wait.Until(t, "every task queued", 5*time.Second, func() bool { return cmp.Equal(d.queueByProject(), want) })
}

// TestQueueTally: the counts the metrics and the fleet view read stay
// those of the queue's items through pushes, replacements (to another
// kind, project or priority), removals of present and absent steps, and
// an emptied queue.
func TestQueueTally(t *testing.T) {
	recount := func(q *queue) tally {
		want := newTally()
		for _, r := range q.items {
			want.add(r, 1)
		}
		return want
	}
	rng := rand.New(rand.NewPCG(1, 2))
	q := newQueue()
	for i := range 20_000 {
		id := fmt.Sprintf("s%d", rng.IntN(300))
		if rng.IntN(3) == 0 {
			id += ".p1" // a part
		}
		switch rng.IntN(4) {
		case 0:
			q.remove(id)
		default:
			q.push(Ready{TaskID: "t", StepID: id, Kind: []string{"probe", "ingest", "video"}[rng.IntN(3)], Project: []string{"", "a", "b"}[rng.IntN(3)], Priority: rng.IntN(3)})
		}
		if i%97 == 0 || i == 19_999 {
			if diff := cmp.Diff(recount(q), q.tally, cmp.AllowUnexported(tally{})); diff != "" {
				t.Fatalf("after %d operations, the tally differs from a recount (-want +got):\n%s", i+1, diff)
			}
		}
	}
	for id := range q.items {
		q.remove(id)
	}
	if diff := cmp.Diff(newTally(), q.tally, cmp.AllowUnexported(tally{})); diff != "" {
		t.Fatalf("emptied queue's tally (-want +got):\n%s", diff)
	}
}
