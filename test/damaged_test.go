package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDamagedNodeRefused: a server whose Raft log or snapshot was damaged
// while it was down refuses to start, with a message naming the file,
// while the other two keep serving; once the operator empties its data
// folder it rejoins and catches up.
func TestDamagedNodeRefused(t *testing.T) {
	t.Parallel()
	nodes := mustCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for i := range 5 {
		mustCreate(t, a.URL(), fmt.Sprintf(`{"input":"https://example.com/%d.mov","kind":"video"}`, i))
	}
	waitSameState(t, 20*time.Second, nodes...)
	c.Stop(t)

	refused := func(t *testing.T, file string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, ittybitBin, append(append([]string{}, c.args...), "--http", c.HTTPAddr, "--raft", c.RaftAddr)...)
		cmd.Env = c.env
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("c started on a damaged %s:\n%s", file, out)
		}
		if err == nil || !strings.Contains(string(out), file) {
			t.Fatalf("c: %v, and its output does not name %s:\n%s", err, file, out)
		}
		t.Logf("c refused to start: %s", lastLine(string(out)))
		// The other two keep serving, through either.
		for _, p := range []*proc{a, b} {
			mustCreate(t, p.URL(), `{"input":"https://example.com/while-c-is-down.mov","kind":"audio"}`)
		}
	}
	segs, err := filepath.Glob(filepath.Join(c.DataDir(), "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no raft log segment in %s (%v)", c.DataDir(), err)
	}
	slices.Sort(segs)
	logPath := segs[len(segs)-1] // the one written to
	good, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	end := len(good) // what was written: the rest is the zeros it was made with
	for end > 0 && good[end-1] == 0 {
		end--
	}
	t.Run("log cut short", func(t *testing.T) {
		if err := os.WriteFile(logPath, good[:100], 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, filepath.Base(logPath))
	})
	t.Run("log overwritten", func(t *testing.T) {
		bad := append([]byte(nil), good...)
		for i := end / 2; i < len(bad); i++ {
			bad[i] ^= 0x5a
		}
		if err := os.WriteFile(logPath, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, filepath.Base(logPath))
	})
	// The operator empties the folder: c joins again (its --join) and
	// catches up.
	if err := os.RemoveAll(c.DataDir()); err != nil {
		t.Fatal(err)
	}
	c.mustStart(t)
	mustReady(t, c)
	waitSameState(t, 30*time.Second, nodes...)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
