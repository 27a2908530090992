package state

import (
	"github.com/google/btree"
	"github.com/hashicorp/go-memdb"
)

// The tasks table: every task in id order (the order they were created:
// ids are ULIDs, their time first), and each project's tasks in id order
// beside it. Both are copy-on-write B-trees. The state machine changes
// its own copy in place as it applies an entry and, when the write
// commits, publishes a clone, made in constant time; readers read the
// last one published, which nothing changes after. In memdb each task was
// a radix path of its own in each index, copied with its watch channels
// at every write: most of what the state machine allocated per task, and
// most of the objects the collector walked.

// taskItem is one task: its id and its stored form (*Task, *coldTask or
// *seededTask).
type taskItem struct {
	id  string
	raw any
}

// projectKey places a task of a project; the operator's tasks (no
// project) have none.
type projectKey struct{ project, id string }

// taskTable is one version of the tasks table.
type taskTable struct {
	byID      *btree.BTreeG[taskItem]
	byProject *btree.BTreeG[projectKey]
}

// taskDegree is the trees' degree: nodes of up to 31 items, so that the
// path a write copies after each commit stays small.
const taskDegree = 16

func newTaskTable() *taskTable {
	return &taskTable{
		byID: btree.NewG(taskDegree, func(a, b taskItem) bool { return a.id < b.id }),
		byProject: btree.NewG(taskDegree, func(a, b projectKey) bool {
			if a.project != b.project {
				return a.project < b.project
			}
			return a.id < b.id
		}),
	}
}

// clone returns a copy that later changes to t leave as it is.
func (t *taskTable) clone() *taskTable {
	return &taskTable{byID: t.byID.Clone(), byProject: t.byProject.Clone()}
}

// get returns the stored form of task id, or nil.
func (t *taskTable) get(id string) any {
	it, ok := t.byID.Get(taskItem{id: id})
	if !ok {
		return nil
	}
	return it.raw
}

// put stores raw, in place of the task's earlier version. A task never
// changes project, so only a new one enters the project index.
func (t *taskTable) put(raw any) {
	id, _, _, _ := taskFields(raw)
	if _, replaced := t.byID.ReplaceOrInsert(taskItem{id: id, raw: raw}); !replaced {
		if p := taskProject(raw); p != "" {
			t.byProject.ReplaceOrInsert(projectKey{project: p, id: id})
		}
	}
}

// delete drops task id, and reports whether it was there.
func (t *taskTable) delete(id string) bool {
	it, ok := t.byID.Delete(taskItem{id: id})
	if ok {
		if p := taskProject(it.raw); p != "" {
			t.byProject.Delete(projectKey{project: p, id: id})
		}
	}
	return ok
}

// len returns how many tasks it holds.
func (t *taskTable) len() int { return t.byID.Len() }

// each calls fn with each task in id order, until fn returns false.
func (t *taskTable) each(fn func(raw any) bool) {
	t.byID.Ascend(func(it taskItem) bool { return fn(it.raw) })
}

// walk calls fn with the tasks of project ("" for all tasks) in id order,
// or in reverse when descending, from the task from on (included; "" for
// the first), until fn returns false.
func (t *taskTable) walk(project string, descending bool, from string, fn func(raw any) bool) {
	if project == "" {
		visit := func(it taskItem) bool { return fn(it.raw) }
		switch {
		case from == "" && descending:
			t.byID.Descend(visit)
		case from == "":
			t.byID.Ascend(visit)
		case descending:
			t.byID.DescendLessOrEqual(taskItem{id: from}, visit)
		default:
			t.byID.AscendGreaterOrEqual(taskItem{id: from}, visit)
		}
		return
	}
	visit := func(k projectKey) bool {
		if k.project != project {
			return false // past the project's range
		}
		raw := t.get(k.id)
		return raw == nil || fn(raw) // both are of one version: never nil
	}
	switch {
	case descending && from == "":
		// Every id sorts before "\xff".
		t.byProject.DescendLessOrEqual(projectKey{project: project, id: "\xff"}, visit)
	case descending:
		t.byProject.DescendLessOrEqual(projectKey{project: project, id: from}, visit)
	default:
		t.byProject.AscendGreaterOrEqual(projectKey{project: project, id: from}, visit)
	}
}

// write is one change of the state: memdb's write transaction for the
// other tables, and the tasks as the change leaves them. Its holder is the
// one writer (memdb's write transaction excludes any other), so the
// writer's copy of the tasks (Store.wtasks) is its alone until it ends.
type write struct {
	*memdb.Txn
	s       *Store
	changed bool // the tasks changed
	done    bool
}

// write begins a change.
func (s *Store) write() *write {
	return &write{Txn: s.db.Load().Txn(true), s: s}
}

// tasks returns the tasks as the change leaves them so far.
func (w *write) tasks() *taskTable { return w.s.wtasks }

// putTaskRaw stores a task's stored form.
func (w *write) putTaskRaw(raw any) {
	w.changed = true
	w.s.wtasks.put(raw)
}

// deleteTask drops task id, and reports whether it was there.
func (w *write) deleteTask(id string) bool {
	if w.s.wtasks.delete(id) {
		w.changed = true
		return true
	}
	return false
}

// Commit makes the change visible to readers.
func (w *write) Commit() {
	if w.changed {
		w.s.tasks.Store(w.s.wtasks.clone())
	}
	w.done = true
	w.Txn.Commit()
}

// Abort drops the change, unless it committed.
func (w *write) Abort() {
	if !w.done && w.changed {
		w.s.wtasks = w.s.tasks.Load().clone()
	}
	w.done = true
	w.Txn.Abort()
}
