package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TestTaskVersions checks the tasks' copy-on-write: what a reader holds
// stays as it was while the writer goes on, and a write that aborts
// leaves nothing behind.
func TestTaskVersions(t *testing.T) {
	s := New()
	for i := range 200 {
		mustCreate(t, s, uint64(i+1), fmt.Sprintf("task_%04d", i))
	}
	held := s.tasks.Load()
	before := s.Hash()
	if _, err := s.CancelTask("task_0007", 2000); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, 300, "task_0500")
	if got := held.len(); got != 200 {
		t.Errorf("the version held has %d tasks after a later create, want 200", got)
	}
	if _, _, _, status := taskFields(held.get("task_0007")); status != api.TaskQueued {
		t.Errorf("task_0007 in the version held is %s after a later cancel, want queued", status)
	}
	if held.get("task_0500") != nil {
		t.Error("the version held has a task created after it")
	}
	now := s.tasks.Load()
	if _, _, _, status := taskFields(now.get("task_0007")); status != api.TaskCancelled {
		t.Errorf("task_0007 is %s after its cancel, want cancelled", status)
	}
	if before == s.Hash() {
		t.Error("the hash did not change with the state")
	}

	// A write that aborts: neither readers nor the next write see it.
	w := s.write()
	w.putTaskRaw(stored(&Task{Task: newTask("task_0900", encoders.KindVideo, 3000)}))
	if s.tasks.Load().get("task_0900") != nil {
		t.Error("readers see a write before it commits")
	}
	w.Abort()
	mustCreate(t, s, 301, "task_0901")
	if s.tasks.Load().get("task_0900") != nil {
		t.Error("an aborted write's task was published by the next write")
	}
	if got := s.CountTasks(); got != 202 {
		t.Errorf("%d tasks, want 202", got)
	}
}

// TestListTasksModel checks pages of tasks, with and without a project,
// in both orders, from either cursor, filtered by status and kind, against
// a plain sorted list of the same tasks, before and after some retire.
func TestListTasksModel(t *testing.T) {
	type row struct {
		id, project string
		kind        encoders.Kind
		status      api.TaskStatus
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	s := New()
	projects := []string{"", "proj_a", "proj_b"}
	var model []row
	for i := range 400 {
		id := fmt.Sprintf("task_%04d", i)
		kind := []encoders.Kind{encoders.KindVideo, encoders.KindAudio}[rnd.IntN(2)]
		p := projects[rnd.IntN(len(projects))]
		task := newTask(id, kind, 1000)
		task.Project = p
		if r := s.CreateTasks(uint64(i+1), 1000, []CreateRequest{{Task: task, Scope: "req", Key: "k-" + id, BodyHash: "h"}}); r[0].Task == nil {
			t.Fatalf("create %s: %+v", id, r[0])
		}
		model = append(model, row{id: id, project: p, kind: kind, status: api.TaskQueued})
	}
	for i := range model {
		if rnd.IntN(3) == 0 {
			if _, err := s.CancelTask(model[i].id, 2000); err != nil {
				t.Fatal(err)
			}
			model[i].status = api.TaskCancelled
		}
	}

	list := func(q ListQuery) ([]string, bool, error) {
		var rows []row
		for _, r := range model {
			if q.Project == "" || r.project == q.Project {
				rows = append(rows, r)
			}
		}
		descending := q.Order != Asc
		cursor := q.After
		if q.Before != "" {
			cursor, descending = q.Before, !descending
		}
		if descending {
			slices.Reverse(rows)
		}
		start := 0
		if cursor != "" {
			start = slices.IndexFunc(rows, func(r row) bool { return r.id == cursor })
			if start < 0 {
				return nil, false, ErrNotFound
			}
			start++
		}
		var page []string
		more := false
		for _, r := range rows[start:] {
			if (q.Status != "" && r.status != q.Status) || (q.Kind != "" && r.kind != q.Kind) {
				continue
			}
			if len(page) == q.Limit {
				more = true
				break
			}
			page = append(page, r.id)
		}
		if q.Before != "" {
			slices.Reverse(page)
		}
		return page, more, nil
	}

	check := func(round int) {
		t.Helper()
		for range 2000 {
			q := ListQuery{Limit: 1 + rnd.IntN(30), Order: []Order{Asc, Desc}[rnd.IntN(2)], Project: projects[rnd.IntN(len(projects))]}
			if rnd.IntN(4) == 0 {
				q.Status = []api.TaskStatus{api.TaskQueued, api.TaskCancelled}[rnd.IntN(2)]
			}
			if rnd.IntN(4) == 0 {
				q.Kind = encoders.KindAudio
			}
			cursor := fmt.Sprintf("task_%04d", rnd.IntN(420))
			switch rnd.IntN(3) {
			case 1:
				q.After = cursor
			case 2:
				q.Before = cursor
			}
			want, wantMore, wantErr := list(q)
			page, more, err := s.ListTasks(q)
			if !errors.Is(err, wantErr) {
				t.Fatalf("round %d, %+v: error %v, want %v", round, q, err, wantErr)
			}
			if diff := cmp.Diff(want, ids(page)); diff != "" || more != wantMore {
				t.Fatalf("round %d, %+v: more %v (want %v), page (-want +got):\n%s", round, q, more, wantMore, diff)
			}
		}
	}
	check(1)

	// Retire a third of the cancelled tasks: they leave both orders.
	var gone []string
	kept := model[:0]
	for _, r := range model {
		if r.status == api.TaskCancelled && rnd.IntN(3) > 0 {
			gone = append(gone, r.id)
			continue
		}
		kept = append(kept, r)
	}
	model = kept
	if n := s.RetireTasks(Retirement{IDs: gone, Listed: true}); n != len(gone) {
		t.Fatalf("retired %d tasks, want %d", n, len(gone))
	}
	if got := s.CountTasks(); got != len(model) {
		t.Fatalf("%d tasks after retiring, want %d", got, len(model))
	}
	check(2)
}

// TestTaskReadsWhileWriting reads tasks from several goroutines while the
// writer creates and cancels them (run with -race): every page is in
// order without repeats, a task once seen stays visible, and the count
// never falls.
func TestTaskReadsWhileWriting(t *testing.T) {
	s := New()
	const n = 1500
	done := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			seen := 0 // tasks task_0000 … seen-1 were all seen created
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				count := s.CountTasks()
				if count < last {
					t.Errorf("reader %d: %d tasks after %d", r, count, last)
					return
				}
				last = count
				for seen < count {
					if _, err := s.Task(fmt.Sprintf("task_%04d", seen)); err != nil {
						t.Errorf("reader %d: task_%04d not found though %d tasks are", r, seen, count)
						return
					}
					seen++
				}
				page, _, err := s.ListTasks(ListQuery{Limit: 50, Order: []Order{Asc, Desc}[r%2]})
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				got := ids(page)
				sorted := slices.IsSorted(got)
				if r%2 == 1 {
					sorted = slices.IsSortedFunc(got, func(a, b string) int { return strings.Compare(b, a) })
				}
				if !sorted || len(slices.Compact(slices.Clone(got))) != len(got) {
					t.Errorf("reader %d: a page out of order or with repeats: %v", r, got)
					return
				}
			}
		})
	}
	for i := range n {
		mustCreate(t, s, uint64(i+1), fmt.Sprintf("task_%04d", i))
		if i%3 == 0 {
			if _, err := s.CancelTask(fmt.Sprintf("task_%04d", i/2), 2000); err != nil && !errors.Is(err, ErrTaskFinished) {
				t.Error(err)
			}
		}
	}
	close(done)
	readers.Wait()
}
