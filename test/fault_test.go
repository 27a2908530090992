package test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var updateReliability = flag.Bool("update", false, "write the fault tests' figures into RELIABILITY.md")

// The fault test's schedule, from the issue: 32 writers for 10 s, the
// leader SIGKILLed at 3 s, writes resumed within 5 s of the kill.
const (
	faultWriters  = 32
	faultDuration = 10 * time.Second
	faultKillAt   = 3 * time.Second
	maxResume     = 5 * time.Second
)

// keyed tells the writers that send an Idempotency-Key.
func keyed(writer int) bool { return writer%2 == 0 }

// attempt is one POST /tasks of the fault test.
type attempt struct {
	retry      bool // a keyed request sent again after a transport error
	input      string
	node       string
	sent, done time.Time
	status     int // 0: no answer (transport error)
	body       []byte
	err        error
}

// faultFigures are what TestLeaderKill measures; they go into
// RELIABILITY.md with -update.
type faultFigures struct {
	tried, created          int
	refused                 int // transport errors of requests to the killed node as it died
	otherFailures           int // any other answer than 201 (must be 0)
	lost, duplicates        int // must be 0
	committedWithout201     int // sent to the killed node, answered by nobody, yet committed
	retried, replayed       int // keyed requests sent again; of those, answered with the killed leader's task
	resume                  time.Duration
	tasks                   int
	restartTasks            int
	restartSameHash         bool // else the test failed in waitState
	restartSameTasks        bool
	leader, newLeader, when string
}

// TestLeaderKill is issue 3's fault test: 32 writers post tasks, spread over
// a three-node cluster, for 10 s; the leader process is SIGKILLed at 3 s.
// Every task answered 201 must then be readable, once, with the contents it
// was created with, from every survivor; writes must resume within 5 s of
// the kill. Then all three nodes (the killed one too) are stopped and
// restarted from their data folders, and must hold the same tasks.
func TestLeaderKill(t *testing.T) {
	nodes := mustCluster(t, "--rate-limit", "0")
	var leader *proc
	var survivors []*proc
	for _, p := range nodes {
		s, err := getState(p)
		if err != nil {
			t.Fatal(err)
		}
		if s.Leader {
			leader = p
		} else {
			survivors = append(survivors, p)
		}
	}
	if leader == nil || len(survivors) != 2 {
		t.Fatalf("want one leader and two followers, got leader %v and %d followers", leader, len(survivors))
	}
	fig := faultFigures{leader: leader.name, when: time.Now().UTC().Format("2006-01-02")}

	// Load: each writer sends one request at a time, each to a node picked
	// at random (taking the nodes in turn, writers fell into step with the
	// group commits) and with an input URL of its own. After the kill,
	// writers skip the killed node as a client with a list of servers
	// would; requests in flight to it at the kill fail. Half the writers
	// send an Idempotency-Key and retry such a failure on a survivor; the
	// others do not retry (so a server-made request id is all that
	// deduplicates their forwarded requests).
	var killed atomic.Bool
	var killTime time.Time
	results := make([][]attempt, faultWriters)
	start := time.Now()
	post := func(p *proc, input string, withKey bool) attempt {
		a := attempt{input: input, node: p.name, sent: time.Now()}
		var hdr []string
		if withKey {
			hdr = []string{"Idempotency-Key", "fault-" + input}
		}
		r, err := send("POST", p.URL()+"/tasks", []byte(`{"input":"`+input+`","kind":"video","options":{"width":640}}`), hdr...)
		a.done, a.status, a.body, a.err = time.Now(), r.Status, r.Body, err
		return a
	}
	var wg sync.WaitGroup
	for w := range faultWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < faultDuration; i++ {
				p := nodes[rand.IntN(len(nodes))]
				if p == leader && killed.Load() {
					p = survivors[rand.IntN(len(survivors))]
				}
				input := fmt.Sprintf("https://example.com/fault/w%02d/%06d.mov", w, i)
				a := post(p, input, keyed(w))
				results[w] = append(results[w], a)
				if a.err != nil && keyed(w) {
					// What a client should do with an ambiguous failure:
					// send the same request, same key, elsewhere.
					r := post(survivors[rand.IntN(len(survivors))], input, true)
					r.retry = true
					results[w] = append(results[w], r)
				}
			}
		}()
	}
	<-time.After(time.Until(start.Add(faultKillAt))) // the fault's schedule, not a synchronisation
	killed.Store(true)
	killTime = time.Now()
	leader.Kill(t)
	t.Logf("killed the leader %s at %v", leader.name, killTime.Sub(start).Round(time.Millisecond))
	wg.Wait()

	// What the writers saw.
	created := map[string][]byte{} // input → 201 body
	tried := map[string]bool{}
	fig.resume = -1
	for _, rs := range results {
		for _, a := range rs {
			fig.tried++
			tried[a.input] = true
			switch {
			case a.status == http.StatusCreated:
				fig.created++
				created[a.input] = a.body
				if a.retry {
					fig.retried++
					var task struct {
						CreatedAt int64 `json:"created_at"`
					}
					_ = json.Unmarshal(a.body, &task)
					if task.CreatedAt <= killTime.UnixMilli() {
						fig.replayed++
					}
				}
				if a.sent.After(killTime) && (fig.resume < 0 || a.done.Sub(killTime) < fig.resume) {
					fig.resume = a.done.Sub(killTime)
				}
			case a.err != nil && a.node == leader.name && !a.done.Before(killTime):
				fig.refused++
			default:
				if a.retry {
					fig.retried++
				}
				fig.otherFailures++
				if fig.otherFailures <= 5 {
					t.Errorf("POST /tasks to %s (sent %v after start): %d %s %v", a.node, a.sent.Sub(start).Round(time.Millisecond), a.status, a.body, a.err)
				}
			}
		}
	}
	if fig.created == 0 {
		t.Fatal("no task was created")
	}
	switch {
	case fig.resume < 0:
		t.Errorf("no write sent after the kill was answered 201")
	case fig.resume > maxResume:
		t.Errorf("writes resumed %v after the kill; want within %v", fig.resume, maxResume)
	}

	// Every survivor converges on the same state; every 201 is there once,
	// as created, read through each survivor.
	settled := waitSameState(t, 30*time.Second, survivors...)
	for _, p := range survivors {
		if s, _ := getState(p); s.Leader {
			fig.newLeader = p.name
		}
	}
	var listed []json.RawMessage
	for _, p := range survivors {
		listed = listAll(t, p.URL())
		lost, dups, unasked, without := checkListing(t, p.name, listed, created, tried)
		if unasked > 0 {
			t.Errorf("via %s: %d listed tasks were never requested", p.name, unasked)
		}
		if len(listed) != settled.Tasks {
			t.Errorf("via %s: %d tasks listed, /internal/state counts %d", p.name, len(listed), settled.Tasks)
		}
		fig.lost, fig.duplicates, fig.committedWithout201 = max(fig.lost, lost), max(fig.duplicates, dups), without
	}
	fig.tasks = settled.Tasks
	mustGetEach(t, survivors, sampleAround(results, killTime, fig.resume))

	// Restart: stop the survivors (SIGTERM), then start all three, the
	// killed node too, from their data folders. They must come back with
	// the state the survivors had.
	for _, p := range survivors {
		p.Stop(t)
	}
	for _, p := range nodes {
		p.mustStart(t)
	}
	mustReady(t, nodes...)
	waitState(t, settled, 60*time.Second, nodes...)
	fig.restartTasks, fig.restartSameHash = settled.Tasks, true
	// Every task's JSON, before (as listed by the survivors, whose state
	// hash the restarted nodes match) and after.
	afterList := listAll(t, nodes[1].URL())
	fig.restartSameTasks = len(afterList) == len(listed)
	for i := 0; i < len(listed) && i < len(afterList); i++ {
		if !bytes.Equal(listed[i], afterList[i]) {
			fig.restartSameTasks = false
			t.Errorf("task %d of the listing differs after the restart:\nbefore %s\nafter  %s", i, listed[i], afterList[i])
			break
		}
	}
	if len(afterList) != len(listed) {
		t.Errorf("%d tasks listed after the restart, %d before", len(afterList), len(listed))
	}

	t.Logf("writers %d for %v, leader %s killed at %v", faultWriters, faultDuration, leader.name, faultKillAt)
	t.Logf("requests tried %d, answered 201 %d, refused by the killed node %d, other failures %d", fig.tried, fig.created, fig.refused, fig.otherFailures)
	t.Logf("lost %d, duplicates %d, committed without a 201 %d, tasks stored %d", fig.lost, fig.duplicates, fig.committedWithout201, fig.tasks)
	t.Logf("retried with the same Idempotency-Key %d, of which %d were answered with the task the killed leader had committed", fig.retried, fig.replayed)
	t.Logf("new leader %s; writes resumed %v after the kill (the first 201 to a request sent after it)", fig.newLeader, fig.resume.Round(time.Millisecond))
	t.Logf("after stopping and restarting all three: %d tasks, same hash %v, same task JSON %v", fig.restartTasks, fig.restartSameHash, fig.restartSameTasks)
	if *updateReliability {
		if t.Failed() {
			t.Log("not writing RELIABILITY.md: the test failed")
		} else {
			writeReliability(t, fig)
		}
	}
}

// checkListing checks a full listing against the 201 answers (input →
// body): each answered task is listed, once, byte for byte as answered. It
// counts the answered tasks not listed, the inputs listed more than once,
// listed fault-test inputs never requested, and tasks requested but never
// answered 201 that were committed all the same.
func checkListing(tb testing.TB, via string, listed []json.RawMessage, created map[string][]byte, tried map[string]bool) (lost, dups, unasked, without int) {
	tb.Helper()
	byInput := map[string][]json.RawMessage{}
	for _, raw := range listed {
		var task struct{ Input string }
		if err := json.Unmarshal(raw, &task); err != nil {
			tb.Fatal(err)
		}
		byInput[task.Input] = append(byInput[task.Input], raw)
	}
	for in, body := range created {
		got := byInput[in]
		if len(got) == 0 {
			if lost++; lost <= 5 {
				tb.Errorf("via %s: the task of %s was answered 201 but is not listed", via, in)
			}
			continue
		}
		if !bytes.Equal(bytes.TrimSpace(body), got[0]) {
			tb.Errorf("via %s: the task of %s differs from its 201:\n201    %s\nlisted %s", via, in, bytes.TrimSpace(body), got[0])
		}
	}
	for in, got := range byInput {
		if len(got) > 1 {
			if dups++; dups <= 5 {
				tb.Errorf("via %s: %d tasks have the input %s", via, len(got), in)
			}
		}
		_, ok := created[in]
		switch {
		case strings.Contains(in, "/fault/") && !tried[in]:
			unasked++
		case !ok && tried[in]:
			without++
		}
	}
	return lost, dups, unasked, without
}

// sampleAround returns the 201 bodies to read back one by one: every task
// answered from a second before the kill until a second after writes
// resumed, and one in 25 of the others.
func sampleAround(results [][]attempt, kill time.Time, resume time.Duration) [][]byte {
	from, to := kill.Add(-time.Second), kill.Add(max(resume, 0)+time.Second)
	var out [][]byte
	n := 0
	for _, rs := range results {
		for _, a := range rs {
			if a.status != http.StatusCreated {
				continue
			}
			if n++; n%25 == 0 || (a.done.After(from) && a.done.Before(to)) {
				out = append(out, a.body)
			}
		}
	}
	return out
}

// mustGetEach reads each task (201 bodies) with GET /tasks/{id} through
// each node, 16 requests at a time, and compares it with its 201.
func mustGetEach(tb testing.TB, nodes []*proc, bodies [][]byte) {
	tb.Helper()
	type job struct {
		p    *proc
		body []byte
	}
	jobs := make(chan job)
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				var task struct{ ID string }
				_ = json.Unmarshal(j.body, &task)
				r, err := send("GET", j.p.URL()+"/tasks/"+task.ID, nil)
				if err == nil && r.Status == http.StatusOK && bytes.Equal(j.body, r.Body) {
					continue
				}
				if failures.Add(1) <= 5 {
					tb.Errorf("GET /tasks/%s via %s: %v %v\nwant %s", task.ID, j.p.name, r, err, j.body)
				}
			}
		}()
	}
	for _, body := range bodies {
		for _, p := range nodes {
			jobs <- job{p, body}
		}
	}
	close(jobs)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		tb.Errorf("%d of %d reads failed", n, len(bodies)*len(nodes))
	}
}

// writeReliability replaces TestLeaderKill's section of ../RELIABILITY.md
// with a table of the figures.
func writeReliability(tb testing.TB, f faultFigures) {
	tb.Helper()
	const heading = "## TestLeaderKill: leader SIGKILLed under write load"
	rows := [][2]string{
		{"when", f.when},
		{"machine", fmt.Sprintf("%s/%s, %d CPUs; binary and test built with -race: %v", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), raceEnabled)},
		{"cluster", "3 `ittybit server` processes on loopback, Raft defaults (heartbeat and election timeouts 1 s)"},
		{"load", fmt.Sprintf("%d writers, one POST /tasks at a time each, to nodes picked at random, for %v; half send an Idempotency-Key", faultWriters, faultDuration)},
		{"fault", fmt.Sprintf("leader (%s) SIGKILLed at %v; new leader %s", f.leader, faultKillAt, f.newLeader)},
		{"requests tried", fmt.Sprint(f.tried)},
		{"answered 201", fmt.Sprint(f.created)},
		{"failed: in flight to the killed node as it died", fmt.Sprint(f.refused)},
		{"failed otherwise", fmt.Sprint(f.otherFailures)},
		{"lost (201 but not stored)", fmt.Sprint(f.lost)},
		{"duplicates", fmt.Sprint(f.duplicates)},
		{"committed without a 201 (answer lost with the killed node, not retried)", fmt.Sprint(f.committedWithout201)},
		{"retried on a survivor with the same Idempotency-Key (half the writers)", fmt.Sprintf("%d, all 201; %d answered with the task the killed leader had committed", f.retried, f.replayed)},
		{"writes resumed (first 201 to a request sent after the kill)", fmt.Sprintf("%v after the kill (limit %v)", f.resume.Round(time.Millisecond), maxResume)},
		{"tasks stored, same on both survivors", fmt.Sprint(f.tasks)},
		{"after SIGTERM and restart of all three", fmt.Sprintf("%d tasks; same state hash: %v; same task JSON: %v", f.restartTasks, f.restartSameHash, f.restartSameTasks)},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nWritten by `make reliability` (`go test ./test -run TestLeaderKill -update`); see\n`test/fault_test.go`. Figures of one run; `make test` runs the same test with -race\n(servers too), at a fraction of the throughput, and asserts the same.\n\n| figure | value |\n|---|---|\n", heading)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
	}
	updateSection(tb, "../RELIABILITY.md", heading, b.String())
}

// updateSection replaces the section that starts with heading (up to the
// next "## ") in the Markdown file at path, or appends it.
func updateSection(tb testing.TB, path, heading, section string) {
	tb.Helper()
	old := readFileOr(path, "# Reliability\n\nMeasured figures of ittybit's fault tests.\n")
	var out []string
	skipping, replaced := false, false
	for _, line := range strings.SplitAfter(old, "\n") {
		switch {
		case strings.TrimSpace(line) == heading:
			skipping, replaced = true, true
			out = append(out, section+"\n")
		case skipping && strings.HasPrefix(line, "## "):
			skipping = false
			out = append(out, line)
		case !skipping:
			out = append(out, line)
		}
	}
	text := strings.Join(out, "")
	if !replaced {
		text = strings.TrimRight(text, "\n") + "\n\n" + section
	}
	if err := os.WriteFile(path, []byte(strings.TrimRight(text, "\n")+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func readFileOr(path, fallback string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fallback
	}
	return string(data)
}
