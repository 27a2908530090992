package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/wait"
	"github.com/ittybit-oss/ittybit/storage"
)

// retireTasks is how many tasks TestRetirement runs through
// (ITTYBIT_RETIRE_TASKS overrides it). Under the race detector (make
// test) 10,000: 20,000 took up to 19 minutes beside the other packages
// on a loaded 2-core CI, against the package's 20-minute limit. Without
// it 50,000 (make test-long runs those).
func retireTasks() int {
	if v, err := strconv.Atoi(os.Getenv("ITTYBIT_RETIRE_TASKS")); err == nil && v > 0 {
		return v
	}
	if raceEnabled {
		return 10000
	}
	return 50000
}

// liveHeap is the heap a full collection finds live.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// rss is this process's resident set in bytes (0 where /proc cannot say).
func rss() uint64 {
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestRetirement runs three servers with a retention of seconds: 50,000
// tasks (retireTasks) created and cancelled retire to the archive in their shared
// managed storage. The live heap returns to within 20 % of its level
// before the tasks (and the resident set falls with it, without the race
// detector, whose shadow memory stays); every task is read back by id from
// the archive through every server, and again after a full restart (each
// task through one server, in turn); GET /tasks
// lists the live window and points at the archive, which lists every task
// once.
func TestRetirement(t *testing.T) {
	n := retireTasks()
	dir := t.TempDir()
	files, err := storage.OpenManaged(context.Background(), filepath.Join(dir, "files"), storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Each server keeps its Raft address across the restart (the others
	// know it by that).
	raftAddrs := map[string]string{}
	open := func(id string, bootstrap bool, join ...string) *Server {
		t.Helper()
		addr := raftAddrs[id]
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		s, err := Open(Config{
			NodeID: id, HTTPAddr: "127.0.0.1:0", RaftAddr: addr, DataDir: filepath.Join(dir, id),
			Bootstrap: bootstrap, Join: join, APIKeys: []string{testKey}, NodeTokens: []string{testToken}, JoinToken: testToken,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
			Storage: files, TaskRetention: 2 * time.Second,
		})
		if err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		raftAddrs[id] = s.Store().RaftAddr()
		return s
	}
	a := open("a", true)
	wait.Until(t, "a to lead", 20*time.Second, a.Store().LeaderReady)
	b := open("b", false, a.URL())
	c := open("c", false, a.URL())
	servers := []*Server{a, b, c}
	defer func() { closeAll(servers...) }()
	wait.Until(t, "three voters", 20*time.Second, func() bool { p, _ := a.Store().Peers(); return len(p) == 3 })

	ctx := context.Background()
	// run creates count tasks from 8 writers, in batches, then cancels
	// each from 64, and returns their ids.
	run := func(count int) []string {
		t.Helper()
		ids := make([]string, count)
		now := time.Now()
		for i := range ids {
			ids[i] = "task_" + strings.ToLower(ulid.MustNew(uint64(now.UnixMilli()), ulid.DefaultEntropy()).String())
		}
		var next atomic.Int64
		work := func(writers int, do func(i int) error) {
			t.Helper()
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for range writers {
				wg.Go(func() {
					for i := int(next.Add(1)) - 1; i < count; i = int(next.Add(1)) - 1 {
						if err := do(i); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			next.Store(0)
		}
		const batch = 250
		work(8, func(i int) error {
			if i%batch != 0 {
				return nil
			}
			var reqs []state.SeedRequest
			for j := i; j < min(count, i+batch); j++ {
				sd := state.Seed{ID: ids[j], At: now.UnixMilli(), Kind: encoders.KindVideo, Input: fmt.Sprintf("https://example.com/retire/%d.mov", j)}
				for range api.StepKinds(sd.Kind) {
					sd.StepIDs = append(sd.StepIDs, "step_"+strings.ToLower(ulid.Make().String()))
				}
				reqs = append(reqs, state.SeedRequest{Seed: sd, Scope: "idem:test", Key: ids[j], BodyHash: "h"})
			}
			return onLeader(servers, func(s *Server) error {
				_, err := s.Store().CreateTasks(ctx, reqs) // a retry replays (the keys)
				return err
			})
		})
		work(64, func(i int) error {
			return onLeader(servers, func(s *Server) error {
				_, err := s.Store().CancelTask(ctx, ids[i], time.Now().UnixMilli(), state.RequestKey{})
				if errors.Is(err, state.ErrTaskFinished) {
					return nil // cancelled by an earlier try
				}
				return err
			})
		})
		return ids
	}
	// settled waits until every task has retired everywhere and the
	// work each left behind (its files' removal, 5 s after it ended) is
	// done.
	goroutines := runtime.NumGoroutine()
	settled := func() {
		t.Helper()
		for _, s := range servers {
			wait.Until(t, "every task retired on "+s.cfg.NodeID, 5*time.Minute, func() bool { return s.Store().State().CountTasks() == 0 })
		}
		wait.Until(t, "the cancelled tasks' clean-ups", time.Minute, func() bool {
			for _, s := range servers {
				s.cleanMu.Lock()
				left := len(s.cleanups)
				s.cleanMu.Unlock()
				if left > 0 {
					return false
				}
			}
			return runtime.NumGoroutine() <= goroutines+20
		})
	}
	// A small round before the baseline and another before the last
	// measure, so that what servers keep whatever the history (Raft's
	// cache of the last 512 entries, buffers, pools) is the same in both.
	const round = 1000
	run(round)
	settled()
	heap0, rss0 := liveHeap(), rss()
	// The ids wait in a file: what this test holds is not the servers'.
	idsFile := filepath.Join(dir, "ids")
	if err := os.WriteFile(idsFile, []byte(strings.Join(run(n), "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	heapFull, rssFull := liveHeap(), rss()
	t.Logf("%d tasks: live heap %.1f → %.1f MiB, RSS %.0f → %.0f MiB", n, mib(heap0), mib(heapFull), mib(rss0), mib(rssFull))

	settled()
	run(round)
	settled()
	debug.FreeOSMemory()
	// What a moment holds for a while (a snapshot being written holds the
	// state as it was; requests in flight) lets go; what stays is what
	// the servers keep.
	heapEnd := liveHeap()
	// Within 1.2 × the level before the tasks. Under the race detector (10,000
	// tasks, make test, beside the other packages on a loaded CI) what is
	// in flight at either measure varied by a few MiB from run to run
	// (12.3 → 15.0 MiB once, 1.04 × standalone): there, also within 3 % of
	// what the tasks took above the level before them, which a leak of a
	// few hundred bytes a task still exceeds. Without it, 1.2 × only.
	allowed := 1.2 * float64(heap0)
	if raceEnabled {
		allowed = max(allowed, float64(heap0)+0.03*float64(heapFull-heap0))
	}
	wait.For(t, "the live heap to return to within 1.2 × its level before the tasks", time.Minute, func() error {
		if heapEnd = min(heapEnd, liveHeap()); float64(heapEnd) > allowed {
			return fmt.Errorf("%.1f MiB, %.2f × the %.1f MiB before the tasks (%.1f MiB with them)",
				mib(heapEnd), float64(heapEnd)/float64(heap0), mib(heap0), mib(heapFull))
		}
		return nil
	})
	rssEnd := rss()
	if p := os.Getenv("ITTYBIT_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	t.Logf("retired: live heap %.1f MiB (%.2f × before the tasks), RSS %.0f MiB", mib(heapEnd), float64(heapEnd)/float64(heap0), mib(rssEnd))
	if !raceEnabled && rssEnd > rss0+(rssFull-rss0)/2 {
		t.Errorf("RSS after retirement %.0f MiB: less than half of the %.0f MiB the tasks took was returned", mib(rssEnd), mib(rssFull-rss0))
	}
	// Counted by whichever led when each batch retired.
	retired := 0.0
	for _, s := range servers {
		retired += testutilCounter(t, s, "ittybit_tasks_retired_total")
	}
	if retired != float64(n+2*round) {
		t.Errorf("ittybit_tasks_retired_total %v over the servers, want %d", retired, n+2*round)
	}

	data, err := os.ReadFile(idsFile)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Split(string(data), "\n")
	for _, s := range servers { // every task through every server
		readAll(t, []*Server{s}, ids, 0)
	}
	// The list: the live window is empty and says where the rest went;
	// the archive lists every task once, newest first.
	code, body := do(t, "GET", b.URL()+"/tasks?limit=100", "")
	var live api.TaskList
	if err := json.Unmarshal(body, &live); code != 200 || err != nil || len(live.Data) != 0 || live.HasMore || live.Archive != "/tasks?archived=true" {
		t.Errorf("live list: %d %s", code, body)
	}
	seen := map[string]bool{}
	for after := ""; ; {
		code, body := do(t, "GET", c.URL()+"/tasks?archived=true&limit=100&after="+after, "")
		var page api.List[*api.Task]
		if err := json.Unmarshal(body, &page); code != 200 || err != nil {
			t.Fatalf("archive list after %q: %d %s", after, code, body)
		}
		for _, task := range page.Data {
			if seen[task.ID] || !task.Archived || task.Status != api.TaskCancelled || (after != "" && task.ID >= after) {
				t.Fatalf("archive list after %q: %s archived %v, %s, seen %v", after, task.ID, task.Archived, task.Status, seen[task.ID])
			}
			seen[task.ID] = true
			after = task.ID
		}
		if !page.HasMore {
			break
		}
	}
	if len(seen) != n+2*round {
		t.Errorf("the archive listed %d tasks, want %d", len(seen), n+2*round)
	}

	// A full restart: the state holds none of them; the archive all.
	closeAll(servers...)
	a, b, c = open("a", false), open("b", false), open("c", false)
	servers = []*Server{a, b, c}
	wait.Until(t, "a leader after the restart", 3*time.Minute, func() bool {
		return a.Store().LeaderReady() || b.Store().LeaderReady() || c.Store().LeaderReady()
	})
	for _, s := range servers {
		wait.Until(t, s.cfg.NodeID+" to replay its log", 3*time.Minute, func() bool { return s.Store().State().CountTasks() == 0 && s.Store().AppliedIndex() > 0 })
	}
	readAll(t, servers, ids, 1)
}

// onLeader runs write on the leader, again on whichever leads after a
// failure (leadership moves under load), for up to a minute.
func onLeader(servers []*Server, write func(s *Server) error) error {
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, s := range servers {
			if s.Store().IsLeader() {
				if err = write(s); err == nil {
					return nil
				}
			}
		}
	}
	if err == nil {
		err = errors.New("no leader for a minute")
	}
	return err
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// readAll reads every task by id, through the servers in turn (task k
// through server k+turn mod 3), in id order (the archive's objects are
// read once each), from 8 readers; a 503 is tried again, as the contract
// asks of clients.
func readAll(t *testing.T, servers []*Server, ids []string, turn int) {
	t.Helper()
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(ids); i = int(next.Add(1)) - 1 {
				s := servers[(i+turn)%len(servers)]
				code, body := do(t, "GET", s.URL()+"/tasks/"+ids[i], "")
				// 503 unavailable asks the client to retry (an election,
				// a leader that cannot reach a quorum for a moment, on a
				// machine busy with other tests).
				for try := 0; code == http.StatusServiceUnavailable && try < 5; try++ {
					time.Sleep(time.Second)
					code, body = do(t, "GET", s.URL()+"/tasks/"+ids[i], "")
				}
				var task api.Task
				if code != 200 || json.Unmarshal(body, &task) != nil || task.ID != ids[i] || !task.Archived || task.Status != api.TaskCancelled {
					if bad.Add(1) <= 3 {
						t.Errorf("GET %s on %s: %d %s", ids[i], s.cfg.NodeID, code, body)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d of %d tasks not read back from the archive", n, len(ids))
	}
}

// testutilCounter sums a metric of a server's registry.
func testutilCounter(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
