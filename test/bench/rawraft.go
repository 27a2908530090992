package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
)

// logStore is a Raft log and stable store that closes.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// The raw cluster's log store: raft-boltdb (the anchor since the
// benchmark began) or raft-wal (ittybit's log store now).
const (
	rawBolt = "raft-boltdb"
	rawWAL  = "raft-wal"
)

// rawRaft measures a bare 3-node hashicorp/raft cluster: TCP on loopback,
// the log store named by store (rawBolt or rawWAL), the settings
// ittybit's store uses, and an FSM that does nothing. n writers apply
// entries of size bytes for d.
func rawRaft(ctx context.Context, dir, store string, size, n int, d time.Duration) (loadResult, error) {
	type node struct {
		r     *raft.Raft
		trans *raft.NetworkTransport
		db    logStore
	}
	if err := os.RemoveAll(dir); err != nil { // a fresh cluster, even in a reused -work folder
		return loadResult{}, err
	}
	var nodes []node
	defer func() {
		for _, nd := range nodes {
			_ = nd.r.Shutdown().Error()
			nd.trans.Close()
			nd.db.Close()
		}
		// Measured: the logs go (a full run's raw clusters wrote 4 GB).
		_ = os.RemoveAll(dir)
	}()
	var servers []raft.Server
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("n%d", i)
		ndir := filepath.Join(dir, id)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return loadResult{}, err
		}
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
		if err != nil {
			return loadResult{}, err
		}
		var db logStore
		if store == rawWAL {
			db, err = raftwal.Open(ndir)
		} else {
			db, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(ndir, "raft.db")})
		}
		if err != nil {
			return loadResult{}, err
		}
		logs, _ := raft.NewLogCache(512, db)
		snaps, _ := raft.NewFileSnapshotStore(ndir, 2, io.Discard)
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(id)
		// Raft's defaults, as ittybit's servers run (MaxAppendEntries 64).
		cfg.LogOutput = io.Discard
		r, err := raft.NewRaft(cfg, nopFSM{}, logs, db, snaps, trans)
		if err != nil {
			return loadResult{}, err
		}
		nodes = append(nodes, node{r, trans, db})
		servers = append(servers, raft.Server{ID: cfg.LocalID, Address: trans.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return loadResult{}, err
	}
	var leader *raft.Raft
	for deadline := time.Now().Add(30 * time.Second); leader == nil; {
		for _, nd := range nodes {
			if nd.r.State() == raft.Leader {
				leader = nd.r
			}
		}
		if time.Now().After(deadline) {
			return loadResult{}, fmt.Errorf("raw raft: no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	var ok atomic.Int64
	lats := make([][]float64, n)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				start := time.Now()
				if err := leader.Apply(payload, 10*time.Second).Error(); err != nil {
					continue
				}
				lats[i] = append(lats[i], float64(time.Since(start).Microseconds())/1000)
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	var all []float64
	for _, l := range lats {
		all = append(all, l...)
	}
	return loadResult{rate: float64(ok.Load()) / d.Seconds(), p50: quantile(all, 0.5), p99: quantile(all, 0.99)}, nil
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}
