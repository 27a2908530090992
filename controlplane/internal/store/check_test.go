package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

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
		{"log truncated", "raft.db", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "raft.db"), 0.5) }},
		{"log cut to a page", "raft.db", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "raft.db"), 0.01) }},
		{"log pages overwritten", "raft.db", func(t *testing.T, dir string) { scribble(t, filepath.Join(dir, "raft.db"), 4096*2, 4096*6) }},
		{"entry from a newer release", "raft.db", func(t *testing.T, dir string) {
			logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
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
