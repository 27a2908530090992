package state

import (
	"encoding/json"

	"github.com/hashicorp/go-memdb"
)

// Retirement: finished tasks older than the retention leave the state, once
// the leader has written them to the archive (package archive). The leader
// reads the candidates (Retirable), archives them, then proposes the ids
// (RetireTasks); every node drops them, with their request keys and
// events, in the same apply.

// Retiree is a finished task that may retire: its id, when it was created
// and finished, and its JSON as stored (the public shape, managed files as
// managed:// keys).
type Retiree struct {
	ID         string
	Seq        uint64
	CreatedAt  int64
	FinishedAt int64
	JSON       []byte
}

// RequestKey names a remembered request.
type RequestKey struct {
	Scope string `json:"scope"`
	Key   string `json:"key"`
}

// retireSkew is how far out of order creation times may be in commit order
// (leaders' clocks differ): the scan for retirees stops that far past the
// cutoff, not at it.
const retireSkew = 5 * 60 * 1000 // ms

// eachDue calls fn with each stored task that finished before before
// (epoch ms), oldest created first, until fn returns false. It walks tasks
// in commit order and stops past those created before the cutoff, so its
// cost grows with the tasks due and the live ones among them, not with the
// rest.
func (s *Store) eachDue(before int64, fn func(raw any, created, finished int64) bool) {
	it, err := s.db.Load().Txn(false).Get(tableTasks, "seq")
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
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
		}
		if created > before+retireSkew {
			return
		}
		if finished >= 0 && finished < before && !fn(raw, created, finished) {
			return
		}
	}
}

// Retirable returns up to limit finished tasks that finished before before
// (epoch ms), oldest created first.
func (s *Store) Retirable(before int64, limit int) []Retiree {
	var out []Retiree
	s.eachDue(before, func(raw any, created, finished int64) bool {
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
		out = append(out, Retiree{ID: id, Seq: seq, CreatedAt: created, FinishedAt: finished, JSON: data})
		return len(out) < limit
	})
	return out
}

// RetirableCount is how many finished tasks finished before before, up to
// limit: what retirement has yet to do (a metric).
func (s *Store) RetirableCount(before int64, limit int) int {
	n := 0
	s.eachDue(before, func(any, int64, int64) bool {
		n++
		return n < limit
	})
	return n
}

// RequestKeysOf returns the keys of the remembered requests that created
// the tasks ids names.
func (s *Store) RequestKeysOf(ids map[string]bool) []RequestKey {
	it, err := s.db.Load().Txn(false).Get(tableRequests, "id")
	if err != nil {
		return nil
	}
	var out []RequestKey
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*Request); ids[r.TaskID] {
			out = append(out, RequestKey{Scope: r.Scope, Key: r.Key})
		}
	}
	return out
}

// RetireTasks drops the finished tasks named (those not finished, or
// already gone, are skipped), the request keys given when they still name
// one of them, and their events (a delivery still owed keeps its event for
// itself, as when events are trimmed). It returns how many tasks it
// dropped.
func (s *Store) RetireTasks(ids []string, keys []RequestKey) int {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		raw, err := txn.First(tableTasks, "id", id)
		if err != nil || raw == nil {
			continue
		}
		if _, _, _, status := taskFields(raw); !status.Finished() {
			continue
		}
		if err := txn.Delete(tableTasks, raw); err == nil {
			gone[id] = true
		}
	}
	if len(gone) == 0 {
		return 0
	}
	for _, k := range keys {
		raw, err := txn.First(tableRequests, "id", k.Scope, k.Key)
		if err == nil && raw != nil && gone[raw.(*Request).TaskID] {
			_ = txn.Delete(tableRequests, raw)
		}
	}
	s.dropTaskEvents(txn, gone)
	txn.Commit()
	return len(gone)
}

// dropTaskEvents deletes the events of the tasks named, and the deliveries
// of those events already made; a delivery still owed keeps its event.
func (s *Store) dropTaskEvents(txn *memdb.Txn, tasks map[string]bool) {
	it, err := txn.Get(tableEvents, "id")
	if err != nil {
		return
	}
	dropped := map[uint64]*Event{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if e := raw.(*Event); e.Endpoint == nil && tasks[e.TaskID()] {
			dropped[e.Seq] = e
		}
	}
	if len(dropped) == 0 {
		return
	}
	for _, e := range dropped {
		_ = txn.Delete(tableEvents, e)
	}
	s.eventCount.Add(-int64(len(dropped)))
	settleDeliveries(txn, dropped, func(d *Delivery) bool { return dropped[d.EventSeq] != nil })
}
