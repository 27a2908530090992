package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestEventLimit: once the events outgrow Config.EventLimit, the leader
// trims the oldest by itself, down to the limit, without waiting for the
// request keys' expiry round; a cursor before them has expired.
func TestEventLimit(t *testing.T) {
	s, err := Open(Config{
		NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: filepath.Join(t.TempDir(), "a"), Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		EventLimit: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	for b := range 25 { // 2,500 tasks, one task.created each
		var reqs []state.SeedRequest
		for i := range 100 {
			id := fmt.Sprintf("t-%d-%d", b, i)
			seed := state.Seed{ID: id, Kind: encoders.KindImage, Input: "https://example.com/" + id, At: 1}
			for j := range api.StepKinds(encoders.KindImage) {
				seed.StepIDs = append(seed.StepIDs, fmt.Sprintf("%s-s%d", id, j))
			}
			reqs = append(reqs, state.SeedRequest{Seed: seed, Scope: "req", Key: id, BodyHash: "h"})
		}
		if _, err := s.CreateTasks(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
	}
	// The leader trims once there are more than the limit and its slack
	// (1,000 here); a check that lands between two batches trims to the
	// limit, and the batches after it stay within the slack.
	wait.Until(t, "the events trimmed to the limit", 10*time.Second, func() bool {
		n := s.State().EventCount()
		_, _, err := s.State().Events(state.EventQuery{After: 1, Limit: 1})
		return n >= 1000 && n <= 2000 && errors.Is(err, state.ErrCursorExpired)
	})
	if _, _, err := s.State().Events(state.EventQuery{After: 1, Limit: 1}); !errors.Is(err, state.ErrCursorExpired) {
		t.Errorf("a cursor before the events kept: %v, want ErrCursorExpired", err)
	}
	if n := s.State().CountTasks(); n != 2500 {
		t.Errorf("tasks: %d, want 2500 (only events are trimmed)", n)
	}
}
