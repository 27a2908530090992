// Package store wires hashicorp/raft for the control plane: a TCP
// transport, raft-wal for the log and stable store (logstore.go), file snapshots,
// bootstrap and join, and the FSM over package state. Writes go through
// Apply-style methods that fail with ErrNotLeader on followers; concurrent
// task creations are group-committed, many tasks per log entry.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/batch"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/wire"
)

// Errors of writes.
var (
	// ErrNotLeader: this node is not the leader; send the write there.
	ErrNotLeader = errors.New("not the leader")
	// ErrLeadershipLost: leadership was lost while the write was in flight,
	// so it may or may not have been committed. Retry it with the same
	// request key: the FSM deduplicates.
	ErrLeadershipLost = errors.New("leadership lost while committing")
	// ErrHasState is BootstrapWith's answer on a node that already has
	// Raft state (it bootstrapped, joined, or was restarted with its data).
	ErrHasState = errors.New("this node already has cluster state")
	// ErrClosed: the store is shutting down.
	ErrClosed = errors.New("store closed")
)

// Config configures a Store.
type Config struct {
	// NodeID names this node in the Raft configuration; it must stay the
	// same across restarts.
	NodeID string
	// RaftAddr is the TCP address Raft binds; RaftAdvertise is the one
	// peers dial (defaults to RaftAddr).
	RaftAddr      string
	RaftAdvertise string
	// HTTPAddr is where this node serves the API, recorded so that
	// followers can forward writes to the leader.
	HTTPAddr string
	// Dir holds the Raft log (wal/) and snapshots/.
	Dir string
	// LogSegmentBytes is the size of the Raft log's segment files (0:
	// raft-wal's 64 MiB); tests make it small to seal many.
	LogSegmentBytes int
	// Bootstrap forms a new single-node cluster when Dir holds no state.
	Bootstrap bool
	// Logger receives the store's logs (and Raft's, at warning and above).
	Logger *slog.Logger
	// Timing; zero values take hashicorp/raft's defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots
	// (0: paced to the state's size, pace.go); TrailingLogs how many
	// entries a snapshot leaves in the log (for followers that lag a
	// little; 0: Raft's default).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// EventRetention is how long events are kept (0: forever); the
	// leader trims older ones every few minutes.
	EventRetention time.Duration
	// EventLimit is how many events are kept at most (0: no bound): the
	// leader trims the oldest beyond it as soon as they are 5 % over.
	EventLimit int
	// ApplyObserver, when set, is told how long each write took to commit
	// and apply (for metrics).
	ApplyObserver func(d time.Duration)
	// Dial, when set, connects to peers instead of plain TCP (the fault
	// tests' proxy, through package tunnel).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Store is one node's replicated state.
type Store struct {
	cfg     Config
	log     *slog.Logger
	raft    *raft.Raft
	state   *state.Store
	fsm     *fsm
	trans   *raft.NetworkTransport
	wal     *markedLog
	creates *batch.Batcher[state.SeedRequest, state.CreateResult]
	updates *batch.Batcher[state.StepUpdate, state.StepResult]

	// votersApply is the newest entry type every voter applies, as the
	// leader last learned it (SetVotersApply); 0 when unknown. New entry
	// types are written only once every voter can apply them.
	// votersEpoch changes whenever a server may have joined; applyMu
	// orders the two.
	votersApply atomic.Int32
	votersEpoch atomic.Uint64
	applyMu     sync.Mutex

	leaderMu sync.Mutex
	onLeader []func(ctx context.Context)
	isReady  bool

	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Open starts the node: it opens the data folder, starts Raft and, with
// Bootstrap on an empty folder, forms a cluster of one.
func Open(cfg Config) (*Store, error) {
	if cfg.NodeID == "" || cfg.RaftAddr == "" || cfg.Dir == "" {
		return nil, errors.New("store: NodeID, RaftAddr and Dir are required")
	}
	if cfg.RaftAdvertise == "" {
		cfg.RaftAdvertise = cfg.RaftAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "store"), state: state.New(), stop: make(chan struct{})}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: logWriter{cfg.Logger.With("component", "raft")}})
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	// MaxAppendEntries stays at Raft's 64. A create entry carries a
	// batch of tasks and one is in flight at a time, so an AppendEntries
	// rarely carries more than one entry; Raft sizes the slices of every
	// append it sends and every batch it applies by this number (2 KiB
	// each at 256: about 0.4 of the 6.4 KiB the leader allocated a task).

	var adv net.Addr // nil: the address bound, once the port is known
	if cfg.RaftAdvertise != cfg.RaftAddr {
		a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
		if err != nil {
			return nil, fmt.Errorf("raft advertise address %q: %w", cfg.RaftAdvertise, err)
		}
		adv = a
	}
	var err error
	if cfg.Dial == nil {
		s.trans, err = raft.NewTCPTransport(cfg.RaftAddr, adv, 3, 10*time.Second, io.Discard)
	} else {
		s.trans, err = newDialTransport(cfg.RaftAddr, adv, cfg.Dial)
	}
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", cfg.RaftAddr, err)
	}
	s.cfg.RaftAdvertise = string(s.trans.LocalAddr())
	if err := checkSnapshots(filepath.Join(cfg.Dir, "snapshots")); err != nil {
		s.trans.Close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStore(cfg.Dir, 2, io.Discard)
	if err != nil {
		s.trans.Close()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	s.wal, err = openLogStore(cfg.Dir, cfg.LogSegmentBytes, rc.Logger.Named("wal"))
	if err != nil {
		s.trans.Close()
		return nil, err
	}
	logs, err := raft.NewLogCache(512, s.wal)
	if err != nil {
		s.closeIO()
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	existing, err := raft.HasExistingState(logs, s.wal, snaps)
	if err != nil {
		s.closeIO()
		return nil, fmt.Errorf("read raft state: %w", err)
	}
	f := &fsm{state: s.state, node: cfg.NodeID}
	if cfg.SnapshotThreshold == 0 {
		f.pace = &snapshotPace{log: s.log}
	}
	s.fsm = f
	s.raft, err = raft.NewRaft(rc, f, logs, s.wal, snaps, s.trans)
	if err != nil {
		s.closeIO()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if f.pace != nil {
		f.pace.raft.Store(s.raft)
	}
	if cfg.Bootstrap && !existing {
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: s.trans.LocalAddr()}}}
		if err := s.raft.BootstrapCluster(boot).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			s.Close()
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	s.creates = batch.New(maxBatch, maxCreatesInFlight, ErrClosed, s.commitCreates)
	s.updates = batch.New(maxBatch, maxUpdatesInFlight, ErrClosed, s.commitStepUpdates)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchLeadership()
	}()
	return s, nil
}

func (s *Store) closeIO() {
	if s.trans != nil {
		s.trans.Close()
	}
	if s.wal != nil {
		s.wal.Close()
	}
}

// State returns the node's local state for reads. On a follower it may
// trail the leader by the entries not yet applied.
func (s *Store) State() *state.Store { return s.state }

// IsLeader reports whether this node is the leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's node id and HTTP address, if known.
func (s *Store) Leader() (id, httpAddr string, ok bool) {
	_, lid := s.raft.LeaderWithID()
	if lid == "" {
		return "", "", false
	}
	srv, found := s.state.Server(string(lid))
	if !found {
		return string(lid), "", false
	}
	return string(lid), srv.HTTPAddr, true
}

// RaftAddr returns the address peers reach this node's Raft at.
func (s *Store) RaftAddr() string { return s.cfg.RaftAdvertise }

// Snapshot takes a Raft snapshot now (and compacts the log).
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// NodeID returns this node's id.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// AppliedIndex returns the last log index applied to the local state.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// StateIndex is the Raft index of the last command whose change readers
// of State see. AppliedIndex may run ahead of it: Raft counts an entry
// applied once it hands it to the state machine.
func (s *Store) StateIndex() uint64 { return s.fsm.index.Load() }

// WaitLeader blocks until a leader is known or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, _, ok := s.Leader(); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// apply proposes one command and waits for it to be applied here.
func (s *Store) apply(ctx context.Context, t commandType, payload any) (any, error) {
	data, err := encode(t, payload)
	if err != nil {
		return nil, err
	}
	return s.applyEntry(ctx, data)
}

// applyEntry proposes an encoded entry (its type byte, then its payload)
// and waits for it to be applied here.
func (s *Store) applyEntry(ctx context.Context, data []byte) (any, error) {
	var err error
	select {
	case <-s.stop:
		return nil, ErrClosed
	default:
	}
	if s.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	start := time.Now()
	f := s.raft.Apply(data, 10*time.Second)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The entry may still commit; the caller's retry is deduplicated.
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, mapRaftErr(err)
	}
	if s.cfg.ApplyObserver != nil {
		s.cfg.ApplyObserver(time.Since(start))
	}
	return f.Response(), nil
}

func mapRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return fmt.Errorf("raft apply: %w", err)
}

// LogVersion is the newest entry type this release applies; servers
// report it (GET /healthz), and a leader writes an entry type only once
// every voter reports that it applies it.
const LogVersion = int(cmdAccessOps)

// VotersEpoch is a number that changes whenever a server may have
// joined. A leader reads it before it asks the voters which entry types
// they apply, and gives it back with the answer (SetVotersApply).
func (s *Store) VotersEpoch() uint64 { return s.votersEpoch.Load() }

// SetVotersApply records the newest entry type every voter applies, as
// the leader learned by asking them after reading epoch (0: unknown, as
// when a voter does not answer). It is ignored when a server may have
// joined since: that one was not asked.
func (s *Store) SetVotersApply(v int, epoch uint64) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if epoch == s.votersEpoch.Load() {
		s.setVotersApply(v)
	}
}

// forgetVotersApply forgets what the voters apply, until they are asked
// again (a server joins; leadership ends).
func (s *Store) forgetVotersApply() {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.votersEpoch.Add(1)
	s.setVotersApply(0)
}

func (s *Store) setVotersApply(v int) {
	old := s.votersApply.Swap(int32(v))
	binary := v >= int(cmdCreateBatch)
	if binary != (old >= int32(cmdCreateBatch)) {
		as := cmdCreateSeeds
		if binary {
			as = cmdCreateBatch
		}
		s.log.Info("log entries for new tasks", "type", as.String(), "voters_apply", v)
	}
}

// CreateTasks commits new tasks, batched with other concurrent calls into
// as few log entries as possible. Results are in request order; a new
// task's Task is built when the caller asks (CreateResult.Resolve), so a
// follower's batch, answered from its seeds, costs the leader no build.
func (s *Store) CreateTasks(ctx context.Context, reqs []state.SeedRequest) ([]state.CreateResult, error) {
	return s.creates.Submit(ctx, reqs)
}

// Group commit: concurrent calls are gathered into one log entry (package
// batch).
const (
	maxBatch = 512 // requests per log entry
	// Entries being committed at once. Creates: one, so that under load
	// each carries everything that queued while the one before it
	// committed (a lone create still goes out at once). With followers
	// forwarding one batch at a time too, at 64 clients over three nodes
	// an entry carries 19 tasks rather than 13 and the leader spends
	// 0.82 × its CPU a task at two each, in 6 interleaved windows of
	// BENCHMARKS.md's section 2, with more tasks a second and a lower
	// p50 (at 16 clients as well); earlier, 2 against 4 had taken 15 %
	// less.
	maxCreatesInFlight = 1
	maxUpdatesInFlight = 4
)

// commitTimeout bounds one group-committed entry: it outlives any one
// caller's context, since others share it.
const commitTimeout = 30 * time.Second

func (s *Store) commitCreates(reqs []state.SeedRequest) ([]state.CreateResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	now := time.Now().UnixMilli()
	var res any
	var err error
	if s.votersApply.Load() >= int32(cmdCreateBatch) {
		data := wire.AppendBatch([]byte{byte(cmdCreateBatch)}, now, reqs)
		p := proposalOf(data, now, reqs)
		s.fsm.proposed.Store(p)
		res, err = s.applyEntry(ctx, data)
		s.fsm.proposed.CompareAndSwap(p, nil)
	} else {
		// A voter of an earlier release (in a rolling upgrade) would stop
		// at create_batch.
		res, err = s.apply(ctx, cmdCreateSeeds, createSeedsCmd{Now: now, Requests: reqs})
	}
	if err != nil {
		return nil, err
	}
	return res.([]state.CreateResult), nil
}

// StepUpdates commits step transitions, batched with other concurrent
// calls. Results are in update order.
func (s *Store) StepUpdates(ctx context.Context, ups []state.StepUpdate) ([]state.StepResult, error) {
	return s.updates.Submit(ctx, ups)
}

func (s *Store) commitStepUpdates(ups []state.StepUpdate) ([]state.StepResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	res, err := s.apply(ctx, updatesCommand(ups), stepUpdatesCmd{Updates: ups})
	if err != nil {
		return nil, err
	}
	return res.([]state.StepResult), nil
}

// RegisterNode records an agent and its capabilities.
func (s *Store) RegisterNode(ctx context.Context, n state.Node) error {
	_, err := s.apply(ctx, cmdRegisterNode, registerNodeCmd{Node: n})
	return err
}

// SetNodeStatus records an agent as ready, draining or down.
func (s *Store) SetNodeStatus(ctx context.Context, name string, status state.NodeStatus, now int64) error {
	_, err := s.apply(ctx, cmdSetNodeStatus, setNodeStatusCmd{Name: name, Status: status, Now: now})
	return err
}

// SetMeta sets a cluster-wide value unless set; it returns the value in
// force.
func (s *Store) SetMeta(ctx context.Context, key, value string) (string, error) {
	res, err := s.apply(ctx, cmdSetMeta, setMetaCmd{Key: key, Value: value})
	if err != nil {
		return "", err
	}
	return res.(string), nil
}

// CancelTask cancels a task at time now, for the request req (its key ""
// when it has none to be known by again).
func (s *Store) CancelTask(ctx context.Context, id string, now int64, req state.RequestKey) (*state.Task, error) {
	c := cancelTaskCmd{ID: id, Now: now}
	if req.Key != "" {
		c.Request = &req
	}
	res, err := s.apply(ctx, cmdCancelTask, c)
	if err != nil {
		return nil, err
	}
	r := res.(cancelResult)
	if r.Task == nil {
		return nil, r.Err
	}
	return &state.Task{Task: *r.Task}, r.Err
}

// WebhookOps applies changes of webhook endpoints and their outbox. It
// must run on the leader.
func (s *Store) WebhookOps(ctx context.Context, ops []state.WebhookOp) ([]state.WebhookResult, error) {
	res, err := s.apply(ctx, cmdWebhookOps, webhookOpsCmd{Ops: ops})
	if err != nil {
		return nil, err
	}
	return res.([]state.WebhookResult), nil
}

// ErrUpgrading is an entry type some voter does not yet apply: the
// change must wait until every server runs this release.
var ErrUpgrading = errors.New("not every server of the cluster applies this change yet")

// AccessOps makes projects and keys and revokes keys. It must run on the
// leader, once every voter applies access_ops: it waits a little for a
// leader just elected to learn that (it asks the voters once a second),
// then answers ErrUpgrading.
func (s *Store) AccessOps(ctx context.Context, ops []state.AccessOp) ([]state.AccessResult, error) {
	if err := s.awaitVoters(ctx, cmdAccessOps, 3*time.Second); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, cmdAccessOps, accessOpsCmd{Ops: ops})
	if err != nil {
		return nil, err
	}
	// Followers learn that an entry is committed from the leader's next
	// message, which may be a heartbeat a tenth of the heartbeat timeout
	// away. A barrier is such a message at once: by its answer the
	// followers know the change is committed and apply it, so a revoked
	// key is refused everywhere within milliseconds of the answer.
	if err := s.raft.Barrier(5 * time.Second).Error(); err != nil {
		s.log.Warn("barrier after access ops", "err", err)
	}
	return res.([]state.AccessResult), nil
}

// awaitVoters waits until every voter applies entries of type t, for at
// most wait.
func (s *Store) awaitVoters(ctx context.Context, t commandType, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for s.votersApply.Load() < int32(t) {
		if !s.IsLeader() {
			return ErrNotLeader
		}
		if time.Now().After(deadline) {
			return ErrUpgrading
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// UpsertServer records a control-plane server's addresses.
func (s *Store) UpsertServer(ctx context.Context, srv state.Server) error {
	_, err := s.apply(ctx, cmdUpsertServer, upsertServerCmd{Server: srv})
	return err
}

// ExpireRequests forgets request keys older than their time to live, and
// events older than Config.EventRetention or beyond the newest
// Config.EventLimit.
func (s *Store) ExpireRequests(ctx context.Context, now int64) (int, error) {
	cmd := expireRequestsCmd{Now: now}
	if s.cfg.EventRetention > 0 {
		cmd.EventsBefore = now - s.cfg.EventRetention.Milliseconds()
	}
	cmd.EventsKeep = s.cfg.EventLimit
	res, err := s.apply(ctx, cmdExpireRequests, cmd)
	if err != nil {
		return 0, err
	}
	n, _ := res.(int)
	return n, nil
}

// RetireTasks drops finished tasks, which the caller has archived, with
// the request keys that created them and their events; it returns how
// many it dropped.
func (s *Store) RetireTasks(ctx context.Context, r state.Retirement) (int, error) {
	res, err := s.apply(ctx, cmdRetireTasks, retireTasksCmd{V: 2, IDs: r.IDs, Requests: r.Requests, Events: r.Events, By: s.cfg.NodeID})
	if err != nil {
		return 0, err
	}
	n, _ := res.(int)
	return n, nil
}

// OnRetired calls fn, as this node applies each retire_tasks entry it
// proposed, with how many tasks the entry retired: exactly once per entry
// committed, even when leadership ended before the proposal's answer. Set
// it before the store serves (entries applied before then are not counted).
func (s *Store) OnRetired(fn func(n int)) { s.fsm.retired.Store(&fn) }

// TrimEvents forgets the oldest events beyond Config.EventLimit, and
// nothing else: the leader writes it as soon as the events outgrow the
// limit, which in a burst is far more often than request keys need
// expiring (a scan of them all).
func (s *Store) TrimEvents(ctx context.Context) error {
	if s.cfg.EventLimit == 0 {
		return nil
	}
	_, err := s.apply(ctx, cmdExpireRequests, expireRequestsCmd{EventsKeep: s.cfg.EventLimit})
	return err
}

// Join adds a voter to the cluster. It must run on the leader. A server
// already present under the same id and address is left alone; one with the
// same id or address but not both is replaced.
func (s *Store) Join(ctx context.Context, id, raftAddr, httpAddr string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read raft configuration: %w", err)
	}
	present := false
	for _, srv := range cf.Configuration().Servers {
		sameID, sameAddr := srv.ID == raft.ServerID(id), srv.Address == raft.ServerAddress(raftAddr)
		switch {
		case sameID && sameAddr:
			present = true
		case sameID || sameAddr:
			if err := s.raft.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return fmt.Errorf("remove stale server %s: %w", srv.ID, mapRaftErr(err))
			}
		}
	}
	if !present {
		// The newcomer may be of an earlier release: new entry types wait
		// until it says what it applies.
		s.forgetVotersApply()
		if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 0).Error(); err != nil {
			return fmt.Errorf("add voter %s: %w", id, mapRaftErr(err))
		}
		s.log.Info("server joined", "node_id", id, "raft_addr", raftAddr)
	}
	return s.UpsertServer(ctx, state.Server{ID: id, RaftAddr: raftAddr, HTTPAddr: httpAddr})
}

// Peers returns the ids and Raft addresses of the cluster's voters.
func (s *Store) Peers() (map[string]string, error) {
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, srv := range cf.Configuration().Servers {
		out[string(srv.ID)] = string(srv.Address)
	}
	return out, nil
}

// HandOff passes leadership to another voter, when this node leads and
// has one, so that a planned stop pauses writes for one election's round
// trip rather than the followers' heartbeat timeout. It returns the new
// leader's id ("" when there was nothing to hand off, or the election it
// started has not ended yet). A transfer the target did not win in time
// (a busy machine) is tried again, up to three times in all, unless
// another node leads by then.
func (s *Store) HandOff() (string, error) {
	if s.raft.State() != raft.Leader {
		return "", nil
	}
	peers, err := s.Peers()
	if err != nil || len(peers) < 2 {
		return "", err
	}
	for try := 1; ; try++ {
		err := s.raft.LeadershipTransfer().Error()
		if err == nil || s.raft.State() != raft.Leader {
			break
		}
		if try == 3 {
			return "", fmt.Errorf("hand off leadership: %w", err)
		}
		s.log.Warn("leadership transfer failed; trying again", "err", err)
	}
	_, id := s.raft.LeaderWithID()
	s.log.Info("handed off leadership", "to", id)
	return string(id), nil
}

// Close stops the node: leader work, the batcher, Raft, then the files.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.creates != nil {
			s.creates.Close()
			s.updates.Close()
		}
		// Raft first: it stops the leadership goroutine's source.
		err = s.raft.Shutdown().Error()
		s.wg.Wait()
		s.closeIO()
	})
	return err
}

// logWriter sends Raft's log lines (hclog) into the store's slog logger.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// updatesCommand is the entry type of a batch of step updates: part
// updates when any splits a step or moves a part, which a node of an
// earlier version must not apply.
func updatesCommand(ups []state.StepUpdate) commandType {
	for _, u := range ups {
		if u.Op == state.OpSplit || api.IsPartID(u.StepID) {
			return cmdPartUpdates
		}
	}
	return cmdStepUpdates
}

// Member reports whether this node belongs to a cluster: its Raft
// configuration names at least one server (it bootstrapped, joined, or
// restarted with its data).
func (s *Store) Member() bool {
	peers, err := s.Peers()
	return err == nil && len(peers) > 0
}

// BootstrapWith forms a new cluster of these voters (node id → Raft
// address), this node among them. Every server of a --bootstrap-expect
// cluster calls it with the same voters: Raft accepts the identical
// configuration on each, and an election follows. It fails with
// ErrHasState when this node already has state.
func (s *Store) BootstrapWith(voters map[string]string) error {
	if _, ok := voters[s.cfg.NodeID]; !ok {
		return fmt.Errorf("bootstrap: this node (%s) is not among the voters", s.cfg.NodeID)
	}
	var cf raft.Configuration
	for _, id := range slices.Sorted(maps.Keys(voters)) {
		cf.Servers = append(cf.Servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(voters[id])})
	}
	if err := s.raft.BootstrapCluster(cf).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return ErrHasState
		}
		return err
	}
	return nil
}

// Leave removes a voter from the cluster. It must run on the leader, and
// the leader does not remove itself: it hands leadership off first.
func (s *Store) Leave(id string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if id == s.cfg.NodeID {
		return fmt.Errorf("the leader (%s) hands leadership off before it leaves", id)
	}
	peers, err := s.Peers()
	if err != nil {
		return err
	}
	if _, ok := peers[id]; !ok {
		// Gone from the newest configuration, but that may be an entry
		// not yet committed (an earlier try whose answer was lost): wait
		// until everything this leader holds is committed, or fail, so
		// that "left" is never said of a removal a new leader could drop.
		if err := s.raft.Barrier(10 * time.Second).Error(); err != nil {
			return fmt.Errorf("confirm the removal of %s: %w", id, mapRaftErr(err))
		}
		return nil
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, mapRaftErr(err))
	}
	s.log.Info("server left", "node_id", id)
	return nil
}
