package state

import (
	"sync"

	"github.com/google/btree"
)

// What the state keeps per task beside memdb: the request keys it
// remembers (Request, in scope and key order) and the ids of the tasks
// that have not ended (in id order: as they were created). Only the state
// machine writes them, as it applies entries, so they need no versions
// for readers; in memdb each key was a radix path of its own, copied with
// its channels at every write: the request keys a third of a create's
// work in the state machine and of its allocation, the active tasks'
// index a quarter of what was left.
//
// Anything else that reads them (a snapshot being written, the leader's
// retirement walk, a new leader's rebuild) reads a clone.

// cowTree is a B-tree written by the state machine alone and read by
// others through clones: copy-on-write, made in constant time, which the
// writer's later changes leave as they were.
type cowTree[T any] struct {
	mu sync.Mutex // orders changes and clones
	t  *btree.BTreeG[T]
}

// cowDegree is the trees' degree: nodes of up to 63 items.
const cowDegree = 32

func newCowTree[T any](less btree.LessFunc[T]) *cowTree[T] {
	return &cowTree[T]{t: btree.NewG(cowDegree, less)}
}

// get returns the item equal to key.
func (c *cowTree[T]) get(key T) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Get(key)
}

// put stores v, in place of any item equal to it.
func (c *cowTree[T]) put(v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.ReplaceOrInsert(v)
}

// swap stores v in place of any item equal to it, and returns that item:
// a lookup and an insert in one walk down the tree.
func (c *cowTree[T]) swap(v T) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.ReplaceOrInsert(v)
}

// delete forgets the item equal to key, if drop says to (nil: always).
func (c *cowTree[T]) delete(key T, drop func(T) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.t.Get(key); ok && (drop == nil || drop(v)) {
		c.t.Delete(v)
	}
}

// removeIf forgets the items drop says to, and returns how many.
func (c *cowTree[T]) removeIf(drop func(T) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var old []T
	c.t.Ascend(func(v T) bool {
		if drop(v) {
			old = append(old, v)
		}
		return true
	})
	for _, v := range old {
		c.t.Delete(v)
	}
	return len(old)
}

// clone returns a copy to read while the writer goes on.
func (c *cowTree[T]) clone() *btree.BTreeG[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Clone()
}

// len returns how many items it holds.
func (c *cowTree[T]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Len()
}

func newRequests() *cowTree[*Request] {
	return newCowTree(func(a, b *Request) bool {
		if a.Scope != b.Scope {
			return a.Scope < b.Scope
		}
		return a.Key < b.Key
	})
}

func newActive() *cowTree[string] {
	return newCowTree(func(a, b string) bool { return a < b })
}

// markActive records whether task id has not ended.
func (s *Store) markActive(id string, active bool) {
	if active {
		s.active.Load().put(id)
	} else {
		s.active.Load().delete(id, nil)
	}
}
