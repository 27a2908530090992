package store

import (
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/wire"
)

// fsm applies committed log entries to the state. It is deterministic: the
// leader stamped every id and time into the commands.
type fsm struct {
	state *state.Store
	// applied, when set, is called after each command with its type; the
	// store counts and times applies for metrics.
	applied func(commandType)
	// pace, when set, counts the commands applied between snapshots and
	// sets the threshold after each (pace.go).
	pace *snapshotPace
	// node is this node's id; retired, when set, is called with how many
	// tasks an entry this node proposed retired, as it applies.
	node    string
	retired atomic.Pointer[func(n int)]
	// index is the Raft index of the last command applied to the state
	// (after its change is visible to readers).
	index atomic.Uint64
	// proposed is the create entry this node proposed as leader and has
	// in flight (one at a time: maxCreatesInFlight), with the requests it
	// encodes, so that the state machine applies them as they are rather
	// than decode the bytes it just wrote.
	proposed atomic.Pointer[proposal]
}

// proposal is a create_batch entry and what it encodes: its bytes (the
// type byte first), its time and its requests as the reader would
// return them (proposalOf).
type proposal struct {
	data []byte
	now  int64
	reqs []state.SeedRequest
}

// proposalOf records data, the create_batch entry that AppendBatch wrote
// for now and reqs. The requests are made to read as ReadBatch would
// read them back: empty options, metadata and step ids as nil, and every
// slice without room beyond its end. So a leader applies the very values
// its followers decode (TestProposalAsRead).
func proposalOf(data []byte, now int64, reqs []state.SeedRequest) *proposal {
	for i := range reqs {
		s := &reqs[i].Seed
		s.StepIDs = clipped(s.StepIDs)
		s.Options = clipped(s.Options)
		s.Metadata = clipped(s.Metadata)
	}
	return &proposal{data: data, now: now, reqs: reqs}
}

// clipped returns s with no room beyond its end, or nil when empty.
func clipped[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s[:len(s):len(s)]
}

// is reports whether data is the proposal's entry: the same bytes in
// the same place (they are never changed once written).
func (p *proposal) is(data []byte) bool {
	return p != nil && len(data) == len(p.data) && len(data) > 0 && &data[0] == &p.data[0]
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

// cancelResult is the result of a cancel command.
type cancelResult struct {
	Task *api.Task
	Err  error
}

// Apply applies one entry.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	t := commandType(l.Data[0])
	payload := l.Data[1:]
	if f.pace != nil {
		f.pace.applied(len(l.Data))
	}
	f.state.SetIndex(l.Index)
	var res any
	switch t {
	case cmdCreateTasks:
		var c createTasksCmd
		mustDecode(t, payload, &c)
		res = f.state.CreateTasks(l.Index, c.Now, c.Requests)
	case cmdCreateSeeds:
		var c createSeedsCmd
		mustDecode(t, payload, &c)
		res = f.state.CreateSeeds(l.Index, c.Now, c.Requests)
	case cmdCreateBatch:
		if p := f.proposed.Load(); p.is(l.Data) {
			res = f.state.CreateSeeds(l.Index, p.now, p.reqs)
			break
		}
		now, seeds, err := wire.ReadBatch(payload)
		if err != nil {
			panic(fmt.Sprintf("decode %s at index %d: %v", t, l.Index, err))
		}
		res = f.state.CreateSeeds(l.Index, now, seeds)
	case cmdCancelTask:
		var c cancelTaskCmd
		mustDecode(t, payload, &c)
		var req state.RequestKey
		if c.Request != nil {
			req = *c.Request
		}
		task, err := f.state.CancelRequest(c.ID, c.Now, req)
		res = cancelResult{Task: task, Err: err}
	case cmdUpsertServer:
		var c upsertServerCmd
		mustDecode(t, payload, &c)
		f.state.UpsertServer(c.Server)
	case cmdExpireRequests:
		var c expireRequestsCmd
		mustDecode(t, payload, &c)
		if c.Now > 0 { // 0: an entry that only trims events
			res = f.state.ExpireRequests(c.Now)
		}
		if c.EventsBefore > 0 || c.EventsKeep > 0 {
			f.state.TrimEvents(c.EventsBefore, c.EventsKeep)
		}
	case cmdRegisterNode:
		var c registerNodeCmd
		mustDecode(t, payload, &c)
		f.state.RegisterNode(c.Node)
	case cmdSetNodeStatus:
		var c setNodeStatusCmd
		mustDecode(t, payload, &c)
		res = f.state.SetNodeStatus(c.Name, c.Status, c.Now)
	case cmdStepUpdates, cmdSplitUpdates, cmdPartUpdates:
		var c stepUpdatesCmd
		mustDecode(t, payload, &c)
		res = f.state.ApplyStepUpdates(c.Updates)
	case cmdWebhookOps:
		var c webhookOpsCmd
		mustDecode(t, payload, &c)
		res = f.state.ApplyWebhookOps(c.Ops)
	case cmdAccessOps:
		var c accessOpsCmd
		mustDecode(t, payload, &c)
		res = f.state.ApplyAccessOps(c.Ops)
	case cmdRetireTasks:
		var c retireTasksCmd
		mustDecode(t, payload, &c)
		n := f.state.RetireTasks(state.Retirement{IDs: c.IDs, Requests: c.Requests, Events: c.Events, Listed: c.V >= 2})
		if fn := f.retired.Load(); fn != nil && c.By != "" && c.By == f.node {
			(*fn)(n)
		}
		res = n
	case cmdSetMeta:
		var c setMetaCmd
		mustDecode(t, payload, &c)
		res = f.state.SetMeta(c.Key, c.Value)
	default:
		// An entry from a newer version: applying it wrongly would fork
		// the state, so stop.
		panic(fmt.Sprintf("unknown command type %d at index %d: upgrade this node", t, l.Index))
	}
	f.index.Store(l.Index)
	if f.applied != nil {
		f.applied(t)
	}
	return res
}

// ApplyBatch applies several entries at once.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = f.Apply(l)
	}
	return out
}

func mustDecode(t commandType, payload []byte, v any) {
	if err := json.Unmarshal(payload, v); err != nil {
		panic(fmt.Sprintf("decode %s: %v", t, err))
	}
}

// Snapshot captures the state; Persist writes it out while applies go on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s := &fsmSnapshot{snap: f.state.Snapshot(), pace: f.pace}
	if f.pace != nil {
		s.bytes, s.entries = f.pace.take()
	}
	return s, nil
}

// Restore replaces the state with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.state.Restore(rc)
}

type fsmSnapshot struct {
	snap *state.Snapshot
	// pace, when set, hears the snapshot's size and what was applied
	// since the one before (bytes in entries commands).
	pace           *snapshotPace
	bytes, entries uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	size, err := s.snap.WriteTo(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return err
	}
	if s.pace != nil {
		s.pace.persisted(uint64(size), s.bytes, s.entries)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
