package state

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

func TestAccessOps(t *testing.T) {
	s := New()
	res := s.ApplyAccessOps([]AccessOp{
		{Op: ProjectCreate, Now: 1, Project: &Project{ID: "proj_a", Name: "a", CreatedAt: 1}},
		{Op: ProjectCreate, Now: 1, Project: &Project{ID: "proj_a", Name: "again"}},
		{Op: KeyCreate, Now: 2, Key: &Key{ID: "key_1", Name: "k", Project: "proj_a", Scopes: []string{"tasks:read"}, Hash: "h1"}},
		{Op: KeyCreate, Now: 2, Key: &Key{ID: "key_2", Project: "proj_b", Hash: "h2"}},
		{Op: KeyCreate, Now: 2, Key: &Key{ID: "key_3", Project: "proj_a", Hash: "h1"}},
		{Op: KeyRevoke, Now: 3, ID: "key_9"},
		{Op: "key_rename", Now: 3, ID: "key_1"},
	})
	var errs []string
	for _, r := range res {
		errs = append(errs, r.Err)
	}
	want := []string{"", AccessExists, "", AccessUnknownProject, AccessExists, AccessNotFound, AccessUnknownOp}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if k := s.KeyByHash("h1"); k == nil || k.ID != "key_1" || !k.Has("tasks:read") || k.Has("admin") {
		t.Errorf("key by hash: %+v", k)
	}
	r := restored(t, s)
	if diff := cmp.Diff(s.Keys(""), r.Keys("")); diff != "" {
		t.Errorf("keys after a snapshot (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(s.Projects(), r.Projects()); diff != "" {
		t.Errorf("projects after a snapshot (-before +after):\n%s", diff)
	}
	r.ApplyAccessOps([]AccessOp{{Op: KeyRevoke, Now: 4, ID: "key_1"}})
	if r.KeyByHash("h1") != nil || len(r.Keys("proj_a")) != 0 {
		t.Errorf("a revoked key is still found")
	}
}

// TestProjectLists: a project's list is its own tasks, live and finished
// (frozen), in order, with cursors, through a snapshot.
func TestProjectLists(t *testing.T) {
	s := New()
	var reqs []CreateRequest
	for i := range 30 {
		task := newTask(fmt.Sprintf("task_%02d", i), encoders.KindImage, 1000)
		task.Project = []string{"", "proj_a", "proj_b"}[i%3]
		reqs = append(reqs, CreateRequest{Task: task, Scope: "req", Key: task.ID, BodyHash: "h"})
	}
	s.CreateTasks(1, 1000, reqs)
	for i := 0; i < 30; i += 2 {
		if _, err := s.CancelTask(fmt.Sprintf("task_%02d", i), 2000); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []*Store{s, restored(t, s)} {
		var got []string
		q := ListQuery{Limit: 3, Order: Asc, Project: "proj_a"}
		for {
			page, more, err := st.ListTasks(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range page {
				if task.Project != "proj_a" {
					t.Errorf("%s of project %q listed", task.ID, task.Project)
				}
				got = append(got, task.ID)
			}
			if !more {
				break
			}
			q.After = page[len(page)-1].ID
		}
		var want []string
		for i := 1; i < 30; i += 3 {
			want = append(want, fmt.Sprintf("task_%02d", i))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("project list (-want +got):\n%s", diff)
		}
		desc, _, _ := st.ListTasks(ListQuery{Limit: 100, Order: Desc, Project: "proj_b"})
		if len(desc) != 10 || desc[0].ID != "task_29" || !slices.IsSortedFunc(desc, func(a, b *api.Task) int { return -cmpStr(a.ID, b.ID) }) {
			t.Errorf("project B newest first: %d tasks, first %s", len(desc), desc[0].ID)
		}
		cancelled, _, _ := st.ListTasks(ListQuery{Limit: 100, Project: "proj_b", Status: api.TaskCancelled})
		if len(cancelled) != 5 {
			t.Errorf("project B cancelled: %d, want 5", len(cancelled))
		}
		if _, _, err := st.ListTasks(ListQuery{Limit: 5, Project: "proj_a", After: "task_02"}); err != ErrNotFound {
			t.Errorf("a cursor of project B's task in A's list: %v, want ErrNotFound", err)
		}
		if p, _ := st.TaskProject("task_04"); p != "proj_a" {
			t.Errorf("TaskProject of a frozen task: %q", p)
		}
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
