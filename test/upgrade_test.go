package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/internal/wait"
	"github.com/ittybit-oss/ittybit/test/release"
)

// previousRelease is the last release before the binary log: its servers
// write new tasks as JSON (create_seeds), forward creates one request at
// a time, and stop at an entry type they do not know.
const previousRelease = "8e226e7"

// TestRollingUpgrade: a cluster of the previous release is upgraded one
// server at a time (SIGTERM, start the new binary on the same data
// folder) while 32 writers post tasks through all three. No write is
// lost or doubled, no server stops at an entry it does not know (the
// leader writes the binary entry type only once every voter says it
// applies it), and the upgraded cluster ends up writing it.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel()
	old, err := release.Build(context.Background(), previousRelease, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nodes := mustClusterOf(t, old, "--rate-limit", "0")

	// The writers' addresses, read once: a restart binds the same ones,
	// and mustStart rewrites the procs' fields as it restarts them.
	urls := []string{nodes[0].URL(), nodes[1].URL(), nodes[2].URL()}
	const writers = 32
	var stop atomic.Bool
	var mu sync.Mutex
	created := map[string][]byte{} // input → 201 body
	tried := map[string]bool{}
	var failures []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				time.Sleep(5 * time.Millisecond) // under load, not saturating: other tests share the CPUs
				input := fmt.Sprintf("https://example.com/fault/upgrade/w%02d/%06d.mov", w, i)
				body := []byte(`{"input":"` + input + `","kind":"video","options":{"width":640}}`)
				mu.Lock()
				tried[input] = true
				mu.Unlock()
				// One task per request, whatever happens on the way: the
				// same Idempotency-Key, sent again elsewhere until answered.
				deadline := time.Now().Add(30 * time.Second)
				for try := 0; ; try++ {
					url := urls[(w+i+try)%len(urls)]
					r, err := send("POST", url+"/tasks", body, "Idempotency-Key", "upgrade-"+input)
					if err == nil && r.Status == http.StatusCreated {
						mu.Lock()
						created[input] = r.Body
						mu.Unlock()
						break
					}
					if time.Now().After(deadline) {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s: %v %v", input, r, err))
						mu.Unlock()
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(created)
	}
	time.Sleep(2 * time.Second) // writes on the old release
	for _, p := range []*proc{nodes[2], nodes[1], nodes[0]} {
		before := count()
		p.Stop(t)
		p.bin = ""
		p.mustStart(t)
		mustReady(t, p)
		time.Sleep(2 * time.Second) // writes through the mixed cluster
		t.Logf("%s upgraded; %d tasks created meanwhile", p.name, count()-before)
		for _, q := range nodes {
			if !q.running() {
				t.Fatalf("%s stopped while %s was upgraded:\n%s", q.name, p.name, q.tail(20))
			}
		}
	}
	// Once every voter applies it, the leader writes the binary entry.
	wait.Until(t, "the upgraded cluster to write create_batch entries", 20*time.Second, func() bool {
		for _, p := range nodes {
			data, _ := os.ReadFile(p.log)
			for line := range strings.SplitSeq(string(data), "\n") {
				if strings.Contains(line, `"msg":"log entries for new tasks"`) && strings.Contains(line, `"type":"create_batch"`) {
					return true
				}
			}
		}
		return false
	})
	time.Sleep(time.Second) // writes on the new release
	stop.Store(true)
	wg.Wait()
	for i, f := range failures {
		if i < 5 {
			t.Errorf("never answered 201: %s", f)
		}
	}

	settled := waitSameState(t, 30*time.Second, nodes...)
	for _, p := range nodes {
		listed := listAll(t, p.URL())
		lost, dups, unasked, _ := checkListing(t, p.name, listed, created, tried)
		if lost+dups+unasked > 0 || len(listed) != settled.Tasks {
			t.Errorf("via %s: %d listed (state holds %d): %d lost, %d twice, %d never asked for", p.name, len(listed), settled.Tasks, lost, dups, unasked)
		}
	}
	// And they all restart on the new release from what they wrote.
	for _, p := range nodes {
		p.Stop(t)
	}
	for _, p := range nodes {
		p.mustStart(t)
	}
	mustReady(t, nodes...)
	waitState(t, settled, 60*time.Second, nodes...)
	t.Logf("%d writers; %d tasks created, %d stored, none lost or doubled", writers, len(created), settled.Tasks)
}
