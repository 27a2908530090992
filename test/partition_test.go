package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// partitionFor is how long writers keep writing to the majority while the
// leader is cut off; writes sent to the cut-off node take up to the
// servers' 15 s forward timeout to be refused, and the partition lasts
// until they all are.
const (
	partitionWriters = 8
	isolatedFor      = 3 * time.Second // writes to the cut-off node are sent during the first 3 s
	isolatedEvery    = 100 * time.Millisecond
)

// TestPartition cuts the leader of a three-node cluster off from the two
// others (Raft and server-to-server HTTP, both ways; clients still reach
// it). The cut-off node must accept no write: each answers 503
// unavailable, never 201, and none is stored after the partition heals.
// The majority elects a leader and goes on accepting writes. After healing,
// all three converge on the same state, the old leader takes writes again,
// and a restart of the whole cluster keeps every task as it was (the same
// state hash on every node, the same task JSON).
func TestPartition(t *testing.T) {
	t.Parallel()
	split, nodes := netsplitCluster(t)
	b, c := nodes[1], nodes[2]
	for i := range 12 {
		mustCreate(t, nodes[i%3].URL(), fmt.Sprintf(`{"input":"https://example.com/before/%02d.mov","kind":"video"}`, i))
	}
	waitSameState(t, 10*time.Second, nodes...)
	var leader *proc
	var majority []*proc
	for _, p := range nodes {
		if s, err := getState(p); err == nil && s.Leader {
			leader = p
		} else {
			majority = append(majority, p)
		}
	}
	if leader == nil || len(majority) != 2 {
		t.Fatalf("want one leader and two followers; got %v and %d", leader, len(majority))
	}

	post := func(p *proc, input string) attempt {
		a := attempt{input: input, node: p.name, sent: time.Now()}
		r, err := send("POST", p.URL()+"/tasks", []byte(`{"input":"`+input+`","kind":"video"}`))
		a.done, a.status, a.body, a.err = time.Now(), r.Status, r.Body, err
		if err == nil && r.Status != http.StatusCreated {
			a.err = fmt.Errorf("%s (Retry-After %q)", r, r.Header.Get("Retry-After"))
		}
		return a
	}

	// The cut: the leader is alone. Writers keep sending to the majority;
	// a request every 100 ms for 3 s goes to the cut-off node.
	split.cut(leader.name)
	cutAt := time.Now()
	t.Logf("cut off the leader %s", leader.name)
	stop := make(chan struct{})
	var mu sync.Mutex
	var toMajority, toIsolated []attempt
	var writers sync.WaitGroup
	for w := range partitionWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := post(majority[rand.IntN(2)], fmt.Sprintf("https://example.com/majority/w%d/%05d.mov", w, i))
				mu.Lock()
				toMajority = append(toMajority, r)
				mu.Unlock()
			}
		}()
	}
	var isolated sync.WaitGroup
	tick := time.NewTicker(isolatedEvery)
	for i := 0; time.Since(cutAt) < isolatedFor; i++ {
		isolated.Add(1)
		go func() {
			defer isolated.Done()
			r := post(leader, fmt.Sprintf("https://example.com/isolated/%03d.mov", i))
			mu.Lock()
			toIsolated = append(toIsolated, r)
			mu.Unlock()
		}()
		<-tick.C // the load's schedule, not a synchronisation
	}
	tick.Stop()
	// Reads on the cut-off node are refused too: it cannot know it is
	// current.
	read := mustSend(t, "GET", leader.URL()+"/tasks?limit=1", nil)
	isolated.Wait()
	close(stop)
	writers.Wait()
	partition := time.Since(cutAt)
	checkError(t, read, http.StatusServiceUnavailable, "unavailable")

	// What the clients saw.
	created := map[string][]byte{}
	tried := map[string]bool{}
	recovered := time.Duration(-1)
	majorityFailed := 0
	for _, r := range toMajority {
		tried[r.input] = true
		if r.status == http.StatusCreated {
			created[r.input] = r.body
			if recovered < 0 || r.done.Sub(cutAt) < recovered {
				recovered = r.done.Sub(cutAt)
			}
			continue
		}
		if majorityFailed++; majorityFailed <= 5 {
			t.Errorf("write to the majority (%s, sent %v after the cut): %v", r.node, r.sent.Sub(cutAt).Round(time.Millisecond), r.err)
		}
	}
	isolated201, isolated503 := 0, 0
	for _, r := range toIsolated {
		tried[r.input] = true
		switch {
		case r.status == http.StatusCreated:
			isolated201++
			t.Errorf("the cut-off node answered 201 to %s: %s", r.input, r.body)
		case r.status == http.StatusServiceUnavailable && bytes.Contains(r.body, []byte(`"unavailable"`)):
			isolated503++
		default:
			t.Errorf("the cut-off node answered %s: %d %v, want 503 unavailable", r.input, r.status, r.err)
		}
	}
	if len(created) == 0 {
		t.Fatal("the majority accepted no write")
	}

	// Heal: everyone converges, the old leader takes writes again.
	split.heal()
	healAt := time.Now()
	waitSameState(t, 30*time.Second, nodes...)
	converged := time.Since(healAt)
	mustCreate(t, leader.URL(), `{"input":"https://example.com/after/heal.mov","kind":"video"}`)
	writable := time.Since(healAt)
	settled := waitSameState(t, 10*time.Second, nodes...)
	listed := listAll(t, b.URL())
	lost, dups, unasked, committedWithout := checkListing(t, "b", listed, created, tried)
	if unasked > 0 || committedWithout > 0 {
		t.Errorf("%d tasks listed were never asked for; %d were stored without a 201 (from the cut-off node?)", unasked, committedWithout)
	}
	for _, raw := range listed {
		var task struct{ Input string }
		_ = json.Unmarshal(raw, &task)
		if bytes.Contains([]byte(task.Input), []byte("/isolated/")) {
			t.Errorf("a write refused by the cut-off node was stored: %s", raw)
		}
	}

	// The whole cluster restarted: the same state.
	for _, p := range nodes {
		p.Stop(t)
	}
	restartAt := time.Now()
	for _, p := range nodes {
		p.mustStart(t)
	}
	mustReady(t, nodes...)
	waitState(t, settled, 60*time.Second, nodes...)
	restarted := time.Since(restartAt)
	after := listAll(t, c.URL())
	sameJSON := len(after) == len(listed)
	for i := 0; sameJSON && i < len(after); i++ {
		sameJSON = bytes.Equal(after[i], listed[i])
	}
	if !sameJSON {
		t.Errorf("the tasks differ after the restart: %d before, %d after", len(listed), len(after))
	}

	f := figures{
		heading: "## TestPartition: the leader cut off from the other two",
		intro: "`test/partition_test.go`. Three `ittybit server` processes; each sends its traffic to the others (Raft, forwarded\n" +
			"requests, joins) through a CONNECT proxy of the test (hidden flag `--peer-proxy`), which cuts the leader off both ways\n" +
			"while clients still reach it. Writers post to the two others throughout; a request every 100 ms for 3 s goes to the\n" +
			"cut-off node. The partition lasts until the cut-off node has answered them all (its forward timeout is 15 s). Then it\n" +
			"heals, and later the whole cluster is stopped and started again.",
	}
	f.add("partition", "leader %s cut off for %s", leader.name, seconds(partition))
	f.add("writes to the cut-off node", "%d tried; %d answered 503 unavailable; %d answered 201 (must be 0); %d stored after healing (must be 0)", len(toIsolated), isolated503, isolated201, committedWithout)
	f.add("writes to the majority", "%d tried by %d writers; %d answered 201; %d failed (must be 0)", len(toMajority), partitionWriters, len(created), majorityFailed)
	f.add("majority took writes again", "%s after the cut (first 201)", seconds(recovered))
	f.add("tunnels refused by the cut", "%d", split.refusals())
	f.add("after healing: same state on all three", "%s after the heal; %d tasks", seconds(converged), settled.Tasks)
	f.add("old leader took a write again", "%s after the heal", seconds(writable))
	f.add("lost (201 but not stored) / duplicates", "%d / %d", lost, dups)
	f.add("whole cluster stopped and started", "same state on all three %s after the start; %d tasks; same state hash: true; same task JSON: %v", seconds(restarted), settled.Tasks, sameJSON)
	f.write(t)
}
