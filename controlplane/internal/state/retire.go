package state

import (
	"encoding/json"
)

// Retirement: finished tasks older than the retention leave the state, once
// the leader has written them to the archive (package archive). The leader
// reads the candidates (Retirable), archives them, then proposes the ids
// (RetireTasks); every node drops them, with their request keys and
// events, in the same apply.

// Retiree is a finished task that may retire: its id, when it was created
// and finished, its JSON as stored (the public shape, managed files as
// managed:// keys), and what goes with it: the keys of the requests that
// created it and the sequence numbers of its events.
type Retiree struct {
	ID         string
	Seq        uint64
	CreatedAt  int64
	FinishedAt int64
	JSON       []byte
	Requests   []RequestKey
	Events     []uint64
}

// RequestKey names a remembered request.
type RequestKey struct {
	Scope string `json:"scope"`
	Key   string `json:"key"`
}

// retireSkew is how far out of order creation times may be in id order
// (an id's time and the task's creation time come from the clock of the
// server that took the request; servers' clocks differ): the walk for
// retirees stops that far past the cutoff, not at it.
const retireSkew = 5 * 60 * 1000 // ms

// eachDue calls fn with each task of tasks that finished before before
// (epoch ms), oldest created first, until fn returns false. It walks tasks
// in id order (the order they were created: ids are ULIDs) and stops past
// those created before the cutoff, so its cost grows with the tasks due
// and the live ones among them, not with the rest.
func eachDue(tasks *taskTable, before int64, fn func(raw any, created, finished int64) bool) {
	tasks.each(func(raw any) bool {
		var created, finished int64
		switch t := raw.(type) {
		case *Task:
			// A finished task is stored frozen; a live one here was
			// restored from a snapshot written before that.
			created, finished = t.CreatedAt, -1
			if t.Status.Finished() && t.FinishedAt != nil {
				finished = *t.FinishedAt
			}
		case *coldTask:
			created, finished = t.CreatedAt, t.FinishedAt
		case *seededTask:
			created, finished = t.At, -1
		}
		if created > before+retireSkew {
			return false
		}
		return finished < 0 || finished >= before || fn(raw, created, finished)
	})
}

// Retirable returns up to limit finished tasks that finished before before
// (epoch ms), oldest created first, each with its request keys still
// remembered at now and its events: one walk over the requests and one
// over the events serve them all, so a caller takes many at once and drops
// them in smaller entries.
func (s *Store) Retirable(now, before int64, limit int) []Retiree {
	tasks := s.tasks.Load()
	events := s.events.Load().view()
	var out []Retiree
	at := map[string]int{}
	last := int64(0)   // the latest finish among them
	newest := int64(0) // the latest creation among them
	eachDue(tasks, before, func(raw any, created, finished int64) bool {
		var data []byte
		switch t := raw.(type) {
		case *Task:
			data, _ = json.Marshal(&t.Task) // every field marshals
		case *coldTask:
			var err error
			if data, err = t.json(); err != nil {
				return true // checked when stored; never here
			}
		}
		id, seq, _, _ := taskFields(raw)
		at[id] = len(out)
		last, newest = max(last, finished), max(newest, created)
		out = append(out, Retiree{ID: id, Seq: seq, CreatedAt: created, FinishedAt: finished, JSON: data})
		return len(out) < limit
	})
	if len(out) == 0 {
		return nil
	}
	// A request is remembered a day at most: with a longer retention, the
	// keys of the tasks due have expired, and there is nothing to walk for.
	if now-newest < max(IdempotencyTTL, RequestTTL) {
		s.reqs.Load().clone().Ascend(func(r *Request) bool {
			if r.TaskID != "" {
				if i, ok := at[r.TaskID]; ok {
					out[i].Requests = append(out[i].Requests, RequestKey{Scope: r.Scope, Key: r.Key})
				}
			}
			return true
		})
	}
	// A task's events are no newer than its end: the walk stops past the
	// last end among them (give or take the leaders' clocks). An event it
	// misses goes when events are trimmed.
	events.from(0, func(e *Event) bool {
		if e.CreatedAt > last+retireSkew {
			return false
		}
		if i, ok := at[e.TaskID()]; ok && e.Endpoint == nil {
			out[i].Events = append(out[i].Events, e.Seq)
		}
		return true
	})
	return out
}

// RetirableCount is how many finished tasks finished before before, up to
// limit: what retirement has yet to do (a metric).
func (s *Store) RetirableCount(before int64, limit int) int {
	n := 0
	eachDue(s.tasks.Load(), before, func(any, int64, int64) bool {
		n++
		return n < limit
	})
	return n
}

// Retirement names what one entry drops: finished tasks, the keys of the
// requests that created them, and their events. An entry written before
// events were named (Events nil and Listed false) drops the events of its
// tasks found by a walk over all of them.
type Retirement struct {
	IDs      []string
	Requests []RequestKey
	Events   []uint64
	Listed   bool
}

// RetireTasks drops the finished tasks named (those not finished, or
// already gone, are skipped), the request keys given when they still name
// one of them, and the events given when they are about one of them (a
// delivery still owed keeps its event for itself, as when events are
// trimmed). It returns how many tasks it dropped.
func (s *Store) RetireTasks(r Retirement) int {
	txn := s.write()
	defer txn.Abort()
	gone := make(map[string]bool, len(r.IDs))
	for _, id := range r.IDs {
		raw := txn.tasks().get(id)
		if raw == nil {
			continue
		}
		if _, _, _, status := taskFields(raw); !status.Finished() {
			continue
		}
		if txn.deleteTask(id) {
			gone[id] = true
		}
	}
	if len(gone) == 0 {
		return 0
	}
	reqs := s.reqs.Load()
	for _, k := range r.Requests {
		reqs.delete(&Request{Scope: k.Scope, Key: k.Key}, func(r *Request) bool { return gone[r.TaskID] })
	}
	dropped := map[uint64]*Event{}
	keep := func(e *Event) bool {
		if e.Endpoint == nil && gone[e.TaskID()] {
			dropped[e.Seq] = e
		}
		return true
	}
	log := s.events.Load()
	if r.Listed {
		for _, seq := range r.Events {
			if e, ok := log.get(seq); ok {
				keep(e)
			}
		}
	} else {
		log.oldest(keep)
	}
	if len(dropped) > 0 {
		settleDeliveries(txn.Txn, dropped, func(d *Delivery) bool { return dropped[d.EventSeq] != nil })
	}
	txn.Commit()
	if len(dropped) > 0 {
		log.remove(dropped, 0)
		s.eventCount.Add(-int64(len(dropped)))
	}
	return len(gone)
}
