package store

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestDamagedDataRefused: a node refuses to start on a data folder whose
// log or snapshot is truncated or changed, naming the file, and starts on
// the same folder undamaged.
func TestDamagedDataRefused(t *testing.T) {
	good := t.TempDir()
	s := mustOpen(t, good, "a", true, "127.0.0.1:0")
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	create(t, s, 40, "t")
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	create(t, s, 5, "u")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(good, "a", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot was written")
	}
	snap := filepath.Base(filepath.Dir(snaps[len(snaps)-1]))
	damage := []struct {
		name, file string // file names the damaged one
		do         func(t *testing.T, dir string)
	}{
		{"log segment truncated", "0000000000000000.wal", func(t *testing.T, dir string) { truncate(t, tailSegment(t, dir), 0.5) }},
		{"log segment cut inside its entries", "0000000000000000.wal", func(t *testing.T, dir string) {
			path := tailSegment(t, dir)
			if err := os.Truncate(path, int64(written(t, path)/2)); err != nil {
				t.Fatal(err)
			}
		}},
		{"log segment overwritten", "0000000000000000.wal", func(t *testing.T, dir string) {
			path := tailSegment(t, dir)
			n := written(t, path)
			scribble(t, path, n*2/5, n/2)
		}},
		{"log segment overwritten to its end", "0000000000000000.wal", func(t *testing.T, dir string) {
			path := tailSegment(t, dir)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			scribble(t, path, written(t, path)/2, int(st.Size()))
		}},
		{"log's last entries zeroed", "0000000000000000.wal", func(t *testing.T, dir string) {
			path := tailSegment(t, dir)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n := written(t, path)
			clear(data[n*4/5 : n])
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"log record damaged", "reaches", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "wal", "reaches"), []byte("x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"one byte of an entry changed", "0000000000000000.wal", func(t *testing.T, dir string) {
			path := tailSegment(t, dir)
			n := written(t, path)
			scribble(t, path, n/3, n/3+1)
		}},
		{"log segment missing", "0000000000000000.wal", func(t *testing.T, dir string) {
			if err := os.Remove(tailSegment(t, dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{"log metadata truncated", "wal-meta.db", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "wal", "wal-meta.db"), 0.5) }},
		{"log metadata overwritten", "wal-meta.db", func(t *testing.T, dir string) {
			scribble(t, filepath.Join(dir, "wal", "wal-meta.db"), 0, 4096*4)
		}},
		{"entry from a newer release", "wal", func(t *testing.T, dir string) {
			logs, err := raftwal.Open(filepath.Join(dir, "wal"))
			if err != nil {
				t.Fatal(err)
			}
			last, _ := logs.LastIndex()
			err = logs.StoreLog(&raft.Log{Index: last + 1, Term: 2, Type: raft.LogCommand, Data: []byte{99, '{', '}'}})
			logs.Close()
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"snapshot truncated", "state.bin", func(t *testing.T, dir string) {
			truncate(t, filepath.Join(dir, "snapshots", snap, "state.bin"), 0.5)
		}},
		{"snapshot changed", "state.bin", func(t *testing.T, dir string) {
			scribble(t, filepath.Join(dir, "snapshots", snap, "state.bin"), 100, 110)
		}},
		{"snapshot metadata", "meta.json", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "snapshots", snap, "meta.json"), []byte("{\"Index\":"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range damage {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(filepath.Join(dir, "a"), os.DirFS(filepath.Join(good, "a"))); err != nil {
				t.Fatal(err)
			}
			tc.do(t, filepath.Join(dir, "a"))
			s, err := Open(Config{NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: filepath.Join(dir, "a")})
			if err == nil {
				s.Close()
				t.Fatal("started on a damaged data folder")
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Errorf("refused with %q, which does not name %s", err, tc.file)
			}
			t.Log(err)
		})
	}
	r, err := Open(Config{NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: filepath.Join(good, "a")})
	if err != nil {
		t.Fatalf("the undamaged folder: %v", err)
	}
	defer r.Close()
	wait.Until(t, "the restored state", 20*time.Second, func() bool { return r.State().CountTasks() == 45 })
}

// truncate cuts a file to a fraction of its size.
func truncate(t *testing.T, path string, keep float64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(float64(st.Size())*keep)); err != nil {
		t.Fatal(err)
	}
}

// scribble overwrites the bytes of a file from from to to.
func scribble(t *testing.T, path string, from, to int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to && i < len(data); i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tailSegment is the path of the last segment of the Raft log in the
// data folder dir: the one written to.
func tailSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no log segment in %s (%v)", dir, err)
	}
	slices.Sort(segs)
	return segs[len(segs)-1]
}

// written is how far a segment holds anything but the zeros it was made
// with.
func written(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(data)
	for n > 0 && data[n-1] == 0 {
		n--
	}
	return n
}

// TestTornWriteAccepted: what a crash part way through an append leaves
// after the last whole batch (a frame cut short, a batch whose checksum
// fails) is not damage: the node starts with every acknowledged entry,
// writes over it, and starts again.
func TestTornWriteAccepted(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, "a", true, "127.0.0.1:0")
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	create(t, s, 20, "t")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := tailSegment(t, filepath.Join(dir, "a"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := (written(t, path) + 7) &^ 7
	torn := []byte{1, 0, 0, 0, 200, 0, 0, 0} // an entry of 200 bytes…
	torn = append(torn, bytes.Repeat([]byte{0xab}, 120)...)
	torn = append(torn, make([]byte, 80)...)    // …of which 120 reached the disk
	torn = append(torn, 3, 0, 0, 0, 1, 2, 3, 4) // and a commit that does not check
	copy(data[at:], torn)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for round, want := range []int{20, 25} {
		s := mustOpen(t, dir, "a", false, "127.0.0.1:0")
		wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
		wait.Until(t, "the tasks", 20*time.Second, func() bool { return s.State().CountTasks() == want })
		if round == 0 {
			create(t, s, 5, "u")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogSegments: a log of many segments (sealed ones and the one
// written to) opens again whole; a sealed segment damaged is refused by
// name.
func TestLogSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{NodeID: "a", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Dir: filepath.Join(dir, "a"), Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		LogSegmentBytes: 16 << 10}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, "leadership", 20*time.Second, s.LeaderReady)
	create(t, s, 150, "t")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "a", "wal", "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	slices.Sort(segs)
	s, err = Open(cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	wait.Until(t, "the tasks", 20*time.Second, func() bool { return s.State().CountTasks() == 150 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sealed := segs[1]
	for _, tc := range []struct {
		name string
		do   func(t *testing.T)
	}{
		{"sealed segment overwritten", func(t *testing.T) { n := written(t, sealed); scribble(t, sealed, n/3, n/3+64) }},
		{"sealed segment's index changed", func(t *testing.T) { n := written(t, sealed); scribble(t, sealed, n-16, n-12) }},
		{"sealed segment cut short", func(t *testing.T) { truncate(t, sealed, 0.9) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, err := os.ReadFile(sealed)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(sealed, good, 0o600)
			tc.do(t)
			s, err := Open(cfg)
			if err == nil {
				s.Close()
				t.Fatal("started on a damaged segment")
			}
			if !strings.Contains(err.Error(), filepath.Base(sealed)) {
				t.Errorf("refused with %q, which does not name %s", err, filepath.Base(sealed))
			}
			t.Log(err)
		})
	}
}

// TestLogRecord: the record of how far the log reaches follows appends,
// and goes back before the log's end is cut back (a follower's
// uncommitted entries replaced) or the whole log goes, so that no such
// log is taken for a damaged one.
func TestLogRecord(t *testing.T) {
	dir := t.TempDir()
	entries := func(from, to uint64) []*raft.Log {
		var logs []*raft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogNoop})
		}
		return logs
	}
	reopen := func(t *testing.T, l *markedLog, want uint64) *markedLog {
		t.Helper()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err := openLogStore(dir, 0, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if last, _ := l.LastIndex(); last != want {
			t.Fatalf("the log ends at %d, want %d", last, want)
		}
		return l
	}
	l, err := openLogStore(dir, 0, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLogs(entries(1, 10)); err != nil {
		t.Fatal(err)
	}
	l = reopen(t, l, 10)
	if err := l.DeleteRange(6, 10); err != nil { // the end cut back
		t.Fatal(err)
	}
	if err := l.StoreLogs(entries(6, 7)); err != nil {
		t.Fatal(err)
	}
	l = reopen(t, l, 7)
	if err := l.DeleteRange(1, 3); err != nil { // the head: the record stays
		t.Fatal(err)
	}
	l = reopen(t, l, 7)
	if err := l.DeleteRange(4, 7); err != nil { // everything
		t.Fatal(err)
	}
	l = reopen(t, l, 0)
	if err := l.StoreLogs(entries(100, 101)); err != nil { // after a snapshot installed
		t.Fatal(err)
	}
	l = reopen(t, l, 101)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The record is what a damaged log is measured against.
	if err := writeMarkFile(filepath.Join(dir, "wal", markName), 200); err != nil {
		t.Fatal(err)
	}
	if l, err := openLogStore(dir, 0, hclog.NewNullLogger()); err == nil {
		l.Close()
		t.Fatal("a log short of its record opened")
	} else if !strings.Contains(err.Error(), "held entries up to 200") {
		t.Errorf("refused with %q", err)
	}
}
