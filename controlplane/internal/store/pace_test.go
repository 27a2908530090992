package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ittybit-oss/ittybit/internal/wait"
)

func TestPaceThreshold(t *testing.T) {
	for _, c := range []struct {
		size, bytes, entries, want uint64
	}{
		{0, 0, 0, paceLeast},                                                 // nothing applied yet
		{1 << 20, 1 << 20, 1024, paceLeast},                                  // a small state: Raft's default
		{1 << 30, 4 << 20, 1024, 1 << 17},                                    // 1 GiB, 4 KiB entries: 512 MiB of them
		{1 << 30, 1024, 1024, paceMost},                                      // 1-byte entries: bounded
		{3 << 30, 300 << 20, 50_000, (3 << 30) / 2 / ((300 << 20) / 50_000)}, // proportional
	} {
		if got := paceThreshold(c.size, c.bytes, c.entries); got != c.want {
			t.Errorf("paceThreshold(%d, %d, %d) = %d, want %d", c.size, c.bytes, c.entries, got, c.want)
		}
	}
}

// TestSnapshotPace: with no threshold configured, a snapshot sets the
// next one's to half its size in entries of the mean size applied before
// it; a configured threshold stays as it is.
func TestSnapshotPace(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{
		NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: filepath.Join(dir, "a"), Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	if got := s.raft.ReloadableConfig().SnapshotThreshold; got != paceLeast {
		t.Fatalf("threshold before any snapshot %d, want Raft's %d", got, paceLeast)
	}
	// Each task its own entry: a snapshot holds about ten times a task's
	// entry, so 2,000 of them ask for more than the least threshold.
	create(t, s, 2000, "t")
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, _ := s.wal.FirstIndex()
	last, _ := s.wal.LastIndex()
	var bytes, entries uint64
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.wal.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			bytes += uint64(len(l.Data))
			entries++
		}
	}
	size := s.fsm.pace.lastSize.Load()
	want := paceThreshold(size, bytes, entries)
	t.Logf("a snapshot of %d bytes after %d entries of %d bytes: threshold %d", size, entries, bytes, want)
	if got := s.raft.ReloadableConfig().SnapshotThreshold; got != want || got <= paceLeast {
		t.Errorf("threshold after a snapshot of %d bytes (%d entries, %d bytes applied) %d, want %d, above %d", size, entries, bytes, got, want, paceLeast)
	}

	fixed := mustOpen(t, dir, "b", true, "127.0.0.1:0")
	defer fixed.Close()
	wait.Until(t, "leadership", 20*time.Second, fixed.LeaderReady)
	create(t, fixed, 40, "t")
	if err := fixed.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if got := fixed.raft.ReloadableConfig().SnapshotThreshold; got != 16 {
		t.Errorf("configured threshold became %d, want 16", got)
	}
}
