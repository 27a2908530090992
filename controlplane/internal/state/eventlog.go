package state

import (
	"sync"

	"github.com/google/btree"
)

// The events are kept outside memdb, in a B-tree by sequence number that
// the state machine alone writes (cow.go's way). In memdb each event was
// a radix path of its own, copied with its channels at every write, and
// trimmed the same way: a third of a create's work in the state machine
// on every node, for a table that is only ever appended to, read in order
// and cut from its oldest end.
//
// An event goes into the tree as its write adds it, and is read only once
// that write has committed: readers of pages (Events, Retirable) stop at
// the last event committed, a watermark the writer moves after each
// commit. A delivery names its event only once committed, so a lookup by
// sequence number (EventBySeq) needs no watermark. Events leave the tree
// after the write that drops them has committed, with the mark of the
// last one trimmed, under one lock: a reader sees a cursor expire only
// when the events before it are gone.

// eventLog is the events kept, oldest first.
type eventLog struct {
	mu sync.Mutex
	t  *btree.BTreeG[*Event]
	// trimmed is the sequence number of the last event trimmed (0: none
	// was): a cursor before it has expired.
	trimmed uint64
	// committed is the sequence number of the last event whose write has
	// committed.
	committed uint64
}

func newEventLog() *eventLog {
	return &eventLog{t: btree.NewG(cowDegree, func(a, b *Event) bool { return a.Seq < b.Seq })}
}

// eventView is a copy of the log to read while the writer goes on.
type eventView struct {
	t                  *btree.BTreeG[*Event]
	trimmed, committed uint64
}

// put adds an event the write under way made.
func (l *eventLog) put(e *Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.ReplaceOrInsert(e)
}

// commit moves the watermark: the events up to seq are committed.
func (l *eventLog) commit(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.committed = max(l.committed, seq)
}

// get returns the event with sequence number seq.
func (l *eventLog) get(seq uint64) (*Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t.Get(&Event{Seq: seq})
}

// remove drops the events of a committed write; trimmed, when above the
// mark, moves it.
func (l *eventLog) remove(es map[uint64]*Event, trimmed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range es {
		l.t.Delete(e)
	}
	l.trimmed = max(l.trimmed, trimmed)
}

// oldest calls fn with the events from the oldest on, until it returns
// false. Only the writer calls it (it holds the lock throughout).
func (l *eventLog) oldest(fn func(*Event) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Ascend(fn)
}

// view returns a copy of the log to read.
func (l *eventLog) view() eventView {
	l.mu.Lock()
	defer l.mu.Unlock()
	return eventView{t: l.t.Clone(), trimmed: l.trimmed, committed: l.committed}
}

// from calls fn with the committed events from sequence number seq on,
// until it returns false.
func (v eventView) from(seq uint64, fn func(*Event) bool) {
	v.t.AscendGreaterOrEqual(&Event{Seq: seq}, func(e *Event) bool {
		return e.Seq <= v.committed && fn(e)
	})
}

// latest is the sequence number of the last committed event kept, 0
// when none is.
func (l *eventLog) latest() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := uint64(0)
	l.t.DescendLessOrEqual(&Event{Seq: l.committed}, func(e *Event) bool {
		last = e.Seq
		return false
	})
	return last
}
