package state

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/btree"
	"github.com/hashicorp/go-memdb"
)

// snapshotVersion is written first; Restore refuses versions it does not
// know.
const snapshotVersion = 1

// record is one line of a snapshot.
type record struct {
	Type    string          `json:"t"`
	Version int             `json:"v,omitempty"`
	Data    json.RawMessage `json:"d,omitempty"`
}

// Snapshot is a point-in-time view of the state, cheap to take; WriteTo
// does the I/O and may run while the state keeps changing.
type Snapshot struct {
	txn    *memdb.Txn
	tasks  *taskTable
	reqs   *btree.BTreeG[*Request]
	events eventView
}

// Snapshot captures the current state. The state machine calls it between
// two entries.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{txn: s.db.Load().Txn(false), tasks: s.tasks.Load(), reqs: s.reqs.Load().clone(), events: s.events.Load().view()}
}

// WriteTo writes the snapshot as JSON lines.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	return sn.writeTo(w, appendRecord)
}

// writeTo writes the snapshot, each line's data as appendData writes it.
func (sn *Snapshot) writeTo(w io.Writer, appendData func(b []byte, raw any) ([]byte, error)) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	cw := &countWriter{w: bw}
	enc := json.NewEncoder(cw)
	if err := enc.Encode(record{Type: "version", Version: snapshotVersion}); err != nil {
		return cw.n, err
	}
	var line []byte // reused: one line at a time
	for _, table := range []string{tableMeta, tableServers, tableNodes, tableRequests, tableTasks, tableEvents, tableWebhooks, tableDeliveries, tableProjects, tableKeys, tableConnections} {
		// Each line is what enc.Encode(record{Type: table, Data: data})
		// writes, framed by hand: the encoder would scan data once more
		// to check it, and snapshots of a large state are mostly that.
		head := `{"t":"` + table + `","d":`
		var werr error
		write := func(raw any) bool {
			var err error
			line, err = appendData(append(line[:0], head...), raw)
			if err != nil {
				werr = fmt.Errorf("snapshot %s: %w", table, err)
				return false
			}
			_, werr = cw.Write(append(line, "}\n"...))
			return werr == nil
		}
		switch table {
		case tableRequests:
			sn.reqs.Ascend(func(r *Request) bool { return write(r) })
		case tableEvents:
			sn.events.from(0, func(e *Event) bool { return write(e) })
		case tableTasks:
			sn.tasks.each(write)
		default:
			it, err := sn.txn.Get(table, "id")
			if err != nil {
				return cw.n, fmt.Errorf("snapshot %s: %w", table, err)
			}
			for raw := it.Next(); raw != nil && write(raw); raw = it.Next() {
			}
		}
		if werr != nil {
			return cw.n, werr
		}
	}
	return cw.n, bw.Flush()
}

// appendRecord appends a snapshot line's data: byte for byte what
// json.Marshal writes for raw, written by hand for what a large state
// holds many of (tasks live, seeded and frozen, their events, request
// keys). Through json.Marshal a queued task cost 35 µs of a snapshot
// (measured on 100,000): reflection over the task and its steps, twice
// (the task, then its task.created event), and a second pass over what
// each MarshalJSON returned, which json.Marshal checks and compacts.
// TestSnapshotAsMarshaled holds it to json.Marshal.
func appendRecord(b []byte, raw any) ([]byte, error) {
	switch v := raw.(type) {
	case *Task:
		return v.appendJSON(b)
	case *seededTask:
		return v.appendJSON(b)
	case *coldTask:
		// Its MarshalJSON is json.Marshal's output already.
		data, err := v.MarshalJSON()
		return append(b, data...), err
	case *Event:
		if v.Endpoint == nil {
			return v.appendJSON(b)
		}
	case *Request:
		return v.appendJSON(b), nil
	}
	return appendMarshaled(b, raw)
}

// appendMarshaled appends what json.Marshal writes for raw.
func appendMarshaled(b []byte, raw any) ([]byte, error) {
	data, err := json.Marshal(raw)
	return append(b, data...), err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the whole state with a snapshot written by WriteTo.
func (s *Store) Restore(r io.Reader) error {
	db := mustDB()
	txn := db.Txn(true)
	defer txn.Abort()
	tasks, reqs, active, log := newTaskTable(), newRequests(), newActive(), newEventLog()
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	first := true
	var events int64
	for {
		var rec record
		if err := dec.Decode(&rec); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if first {
			if rec.Type != "version" || rec.Version != snapshotVersion {
				return fmt.Errorf("snapshot version %d not supported (want %d)", rec.Version, snapshotVersion)
			}
			first = false
			continue
		}
		var obj any
		switch rec.Type {
		case tableTasks:
			if isColdRecord(rec.Data) {
				c, err := readColdRecord(rec.Data)
				if err != nil {
					return fmt.Errorf("snapshot task: %w", err)
				}
				obj = c
				break
			}
			t := &Task{}
			if err := json.Unmarshal(rec.Data, t); err != nil {
				return fmt.Errorf("snapshot task: %w", err)
			}
			// Snapshots before cold tasks hold finished tasks whole.
			obj = stored(t)
			if !t.Status.Finished() {
				active.put(t.ID)
			}
		case tableRequests:
			obj = &Request{}
		case tableServers:
			obj = &Server{}
		case tableNodes:
			obj = &Node{}
		case tableMeta:
			obj = &Meta{}
		case tableEvents:
			obj = &Event{}
		case tableWebhooks:
			obj = &Endpoint{}
		case tableDeliveries:
			obj = &Delivery{}
		case tableProjects:
			obj = &Project{}
		case tableKeys:
			obj = &Key{}
		case tableConnections:
			obj = &Connection{}
		default:
			return fmt.Errorf("snapshot: unknown record type %q", rec.Type)
		}
		if rec.Type != tableTasks {
			if err := json.Unmarshal(rec.Data, obj); err != nil {
				return fmt.Errorf("snapshot %s: %w", rec.Type, err)
			}
		}
		if d, ok := obj.(*Delivery); ok {
			d.setPending()
		}
		if e, ok := obj.(*Event); ok {
			log.t.ReplaceOrInsert(e)
			events++
			continue
		}
		if r, ok := obj.(*Request); ok {
			reqs.put(r)
			continue
		}
		if rec.Type == tableTasks {
			tasks.put(obj)
			continue
		}
		if err := txn.Insert(rec.Type, obj); err != nil {
			return fmt.Errorf("snapshot %s: %w", rec.Type, err)
		}
	}
	if first {
		return fmt.Errorf("empty snapshot")
	}
	log.trimmed = eventsTrimmed(txn)
	log.committed = log.trimmed
	if e, ok := log.t.Max(); ok {
		log.committed = max(log.committed, e.Seq)
	}
	txn.Commit()
	s.db.Store(db)
	s.setTasks(tasks)
	s.reqs.Store(reqs)
	s.active.Store(active)
	s.events.Store(log)
	s.lastEvent = log.committed
	s.eventCount.Store(events)
	s.endpoints = anyEndpoint(db.Txn(false))
	return nil
}
