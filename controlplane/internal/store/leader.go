package store

import (
	"context"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// OnLeader registers fn to run each time this node becomes the leader,
// once every entry of earlier terms has been applied (after a Barrier), so
// that fn rebuilds working state (queues, timers) from complete state. ctx
// ends when leadership is lost or the store closes. Register before the
// node can become leader (right after Open, before serving).
func (s *Store) OnLeader(fn func(ctx context.Context)) {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	s.onLeader = append(s.onLeader, fn)
}

// LeaderReady reports whether this node leads and has rebuilt its working
// state.
func (s *Store) LeaderReady() bool {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.isReady && s.IsLeader()
}

// VerifyLeader confirms that this node still leads: a quorum answered its
// heartbeats after the call. A leader cut off from the others, or stopped
// and resumed, believes it leads until it hears otherwise; a read served
// on that belief alone may miss what a newer leader committed.
func (s *Store) VerifyLeader() error { return s.raft.VerifyLeader().Error() }

// watchLeadership drains Raft's leadership signal on its own goroutine
// (Raft must never block on it) and starts and stops the leader's work.
func (s *Store) watchLeadership() {
	var stopFn func()
	stopLeading := func() {
		if stopFn != nil {
			stopFn()
			stopFn = nil
		}
		s.leaderMu.Lock()
		s.isReady = false
		s.leaderMu.Unlock()
	}
	defer stopLeading()
	ch := s.raft.LeaderCh()
	for {
		select {
		case leader := <-ch:
			stopLeading()
			if !leader {
				s.log.Info("leadership lost")
				continue
			}
			stopFn = s.startLeading()
		case <-s.stop:
			return
		}
	}
}

// startLeading runs lead on its own goroutine and returns what stops it.
func (s *Store) startLeading() func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.lead(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// lead runs while this node is the leader.
func (s *Store) lead(ctx context.Context) {
	for {
		err := s.raft.Barrier(10 * time.Second).Error()
		if err == nil {
			break
		}
		if ctx.Err() != nil || !s.IsLeader() {
			return
		}
		s.log.Warn("barrier after gaining leadership failed; retrying", "err", err)
	}
	// Followers forward writes to the address recorded here.
	if err := s.UpsertServer(ctx, state.Server{ID: s.cfg.NodeID, RaftAddr: s.cfg.RaftAdvertise, HTTPAddr: s.cfg.HTTPAddr}); err != nil {
		s.log.Warn("record own address", "err", err)
	}
	s.leaderMu.Lock()
	s.isReady = true
	fns := append([]func(context.Context){}, s.onLeader...)
	s.leaderMu.Unlock()
	s.log.Info("leading", "node_id", s.cfg.NodeID)

	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx)
		}()
	}
	s.expireLoop(ctx)
	wg.Wait()
	s.forgetVotersApply() // learned afresh by the next leadership
}

// expireLoop forgets old request keys and events every few minutes, and
// trims events as soon as there are more than the limit allows (5 % or
// 1,000 over, whichever is more), so that a burst of work never makes
// the log of events outgrow the memory meant for it.
func (s *Store) expireLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			if limit := s.cfg.EventLimit; limit > 0 && s.State().EventCount() > limit+max(1000, limit/20) {
				if err := s.TrimEvents(ctx); err != nil {
					s.log.Warn("trim events", "err", err)
				}
			}
			continue
		case <-t.C:
		}
		if n, err := s.ExpireRequests(ctx, time.Now().UnixMilli()); err != nil {
			s.log.Warn("expire request keys and events", "err", err)
		} else if n > 0 {
			s.log.Debug("expired request keys", "count", n)
		}
	}
}
