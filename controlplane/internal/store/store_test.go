package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

func mustOpen(t *testing.T, dir, id string, bootstrap bool, raftAddr string) *Store {
	t.Helper()
	s, err := Open(Config{
		NodeID: id, RaftAddr: raftAddr, HTTPAddr: "127.0.0.1:1", Dir: filepath.Join(dir, id), Bootstrap: bootstrap,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		SnapshotThreshold: 16, TrailingLogs: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t *testing.T, s *Store, n int, prefix string) {
	t.Helper()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		seed := state.Seed{ID: id, Kind: encoders.KindVideo, Input: "https://example.com/" + id, At: int64(i)}
		for j := range api.StepKinds(encoders.KindVideo) {
			seed.StepIDs = append(seed.StepIDs, fmt.Sprintf("%s-s%d", id, j))
		}
		if _, err := s.CreateTasks(context.Background(), []state.SeedRequest{{Seed: seed, Scope: "req", Key: id, BodyHash: "h"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSnapshotRestart: a node restarted from its data folder restores its
// state from a snapshot plus the log after it (create_seeds entries, then
// create_batch ones).
func TestSnapshotRestart(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, "a", true, "127.0.0.1:0")
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	create(t, s, 40, "t") // past the snapshot threshold
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// After the snapshot, replayed from the log: binary entries, once
	// every voter applies them (JSON ones before).
	s.SetVotersApply(LogVersion, s.VotersEpoch())
	create(t, s, 5, "u")
	hash, addr := s.State().Hash(), s.RaftAddr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, dir, "a", true, addr)
	defer r.Close()
	wait.Until(t, "the restored state", 20*time.Second, func() bool { return r.State().CountTasks() == 45 })
	if r.State().Hash() != hash {
		t.Error("the state after the restart differs")
	}
}

// TestLaggingFollowerGetsSnapshot: a follower that missed more than the log
// keeps catches up through InstallSnapshot.
func TestLaggingFollowerGetsSnapshot(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, dir, "a", true, "127.0.0.1:0")
	defer a.Close()
	wait.Until(t, "leadership", 20*time.Second, a.LeaderReady)
	b := mustOpen(t, dir, "b", false, "127.0.0.1:0")
	if err := a.Join(context.Background(), "b", b.RaftAddr(), "127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, dir, "c", false, "127.0.0.1:0")
	defer c.Close()
	if err := a.Join(context.Background(), "c", c.RaftAddr(), "127.0.0.1:3"); err != nil {
		t.Fatal(err)
	}
	create(t, a, 5, "early")
	wait.Until(t, "b to catch up", 20*time.Second, func() bool { return b.State().CountTasks() == 5 })
	bAddr := b.RaftAddr()
	b.Close()
	create(t, a, 60, "late") // several snapshots; the log keeps only a few entries
	if err := a.Snapshot(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir, "b", false, bAddr)
	defer b.Close()
	wait.Until(t, "b to catch up from a snapshot", 20*time.Second, func() bool { return b.State().CountTasks() == 65 })
	if b.State().Hash() != a.State().Hash() {
		t.Error("b differs from the leader")
	}
}
