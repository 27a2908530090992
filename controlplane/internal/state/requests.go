package state

import (
	"sync"

	"github.com/google/btree"
)

// requests holds the request keys the state remembers (Request), in scope
// and key order. They live in a B-tree of their own, not in memdb: only
// the state machine reads and writes them, as it applies entries (and
// takes snapshots), so they need no versions for readers, and every task
// created carries one. In memdb each cost a radix path of its own: a
// third of a create's work in the state machine and of its allocation.
//
// Anything else that reads them (the leader's walk for retirement, a
// snapshot being written) reads a clone: copy-on-write, made in constant
// time, which the writer's later changes leave as it was.
type requests struct {
	mu sync.Mutex // orders changes and clones
	t  *btree.BTreeG[*Request]
}

// requestDegree is the B-tree's degree: nodes of up to 63 keys.
const requestDegree = 32

func requestLess(a, b *Request) bool {
	if a.Scope != b.Scope {
		return a.Scope < b.Scope
	}
	return a.Key < b.Key
}

func newRequests() *requests {
	return &requests{t: btree.NewG(requestDegree, requestLess)}
}

// get returns the request with this scope and key, or nil.
func (rs *requests) get(scope, key string) *Request {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, _ := rs.t.Get(&Request{Scope: scope, Key: key})
	return r
}

// put stores r, in place of any request with its scope and key.
func (rs *requests) put(r *Request) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.t.ReplaceOrInsert(r)
}

// removeIf forgets the requests drop says to, and returns how many.
func (rs *requests) removeIf(drop func(*Request) bool) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var old []*Request
	rs.t.Ascend(func(r *Request) bool {
		if drop(r) {
			old = append(old, r)
		}
		return true
	})
	for _, r := range old {
		rs.t.Delete(r)
	}
	return len(old)
}

// remove forgets the request with this scope and key if drop says to.
func (rs *requests) remove(scope, key string, drop func(*Request) bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.t.Get(&Request{Scope: scope, Key: key}); ok && drop(r) {
		rs.t.Delete(r)
	}
}

// clone returns a copy to read while the writer goes on.
func (rs *requests) clone() *btree.BTreeG[*Request] {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.t.Clone()
}

// len returns how many requests are remembered.
func (rs *requests) len() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.t.Len()
}
