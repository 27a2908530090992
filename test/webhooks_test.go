package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// receiverScript is a webhook receiver in Node.js that verifies every
// request with the npm standardwebhooks package (an implementation
// independent of ours) and misbehaves on purpose: 30 % of requests get a
// 500, 5 % an answer only after the sender has given up. It prints its
// port, reads the endpoint's secret from stdin, then prints one JSON line
// per request.
const receiverScript = `
const http = require('http');
const { Webhook } = require(process.argv[1]);
let wh = null;
process.stdin.on('data', (d) => { wh = new Webhook(d.toString().trim()); });
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const r = Math.random();
    let valid = false, event = {};
    try { event = wh.verify(body, req.headers); valid = true; } catch (e) { try { event = JSON.parse(body); } catch (e2) {} }
    const line = { id: req.headers['webhook-id'], body_id: event.id, type: event.type, task: event.data && event.data.id,
      created_at: event.created_at, at: Date.now(), valid, answered: r < 0.30 ? 500 : r < 0.35 ? 'late' : 204 };
    console.log(JSON.stringify(line));
    if (line.answered === 'late') { setTimeout(() => { try { res.writeHead(204).end(); } catch (e) {} }, 1500); return; }
    res.writeHead(line.answered).end();
  });
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
`

// received is one request the receiver took.
type received struct {
	ID        string `json:"id"`      // webhook-id
	BodyID    string `json:"body_id"` // the event's id in the body
	Type      string `json:"type"`
	Task      string `json:"task"`
	CreatedAt int64  `json:"created_at"`
	At        int64  `json:"at"`
	Valid     bool   `json:"valid"`
	Answered  any    `json:"answered"`
}

// TestWebhooksUnderFaults: three servers, two agents and a receiver that
// fails 30 % of requests and answers 5 % too late; 200 image tasks, and
// the leader SIGKILLed in the middle. Every task.completed reaches the
// receiver with a signature npm's standardwebhooks verifies, webhook-id
// the same on every retry, task.created before task.completed per task
// (after deduplication). Duplicates and delivery latency are reported.
// The retry schedule is shortened to seconds and lengthened to 15 retries:
// with 35 % of attempts refused, 8 in a row fail about once in 5,000
// deliveries, and a delivery that fails for good is not what this test
// is about (TestOutboxOnAClock is).
func TestWebhooksUnderFaults(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run make deps")
	}
	mod, _ := filepath.Abs(filepath.Join("npm", "node_modules", "standardwebhooks"))
	if _, err := os.Stat(mod); err != nil {
		t.Fatal("standardwebhooks is not installed: run make deps (npm ci --prefix test/npm)")
	}
	f := mustFleetWith(t, map[string]string{"still.mp4": clips.Path(t, encoderstest.Portrait)},
		[]string{"--webhook-retry-delays", "100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s", "--webhook-timeout", "1s"})

	recv := exec.Command(node, "-e", receiverScript, mod)
	stdin, _ := recv.StdinPipe()
	stdout, _ := recv.StdoutPipe()
	recv.Stderr = os.Stderr
	setDeathSignal(recv)
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = recv.Process.Kill(); _ = recv.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatal("the receiver printed no port")
	}
	var port struct{ Port int }
	if err := json.Unmarshal(lines.Bytes(), &port); err != nil || port.Port == 0 {
		t.Fatalf("receiver: %s", lines.Text())
	}
	var mu sync.Mutex
	var got []received
	go func() {
		for lines.Scan() {
			var r received
			if json.Unmarshal(lines.Bytes(), &r) == nil {
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			}
		}
	}()
	ctx := context.Background()
	wh, err := f.users.CreateWebhook(ctx, api.WebhookRequest{URL: ptr(fmt.Sprintf("http://127.0.0.1:%d/ittybit", port.Port)),
		Events: []string{"task.created", "task.completed"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, wh.Secret+"\n"); err != nil {
		t.Fatal(err)
	}

	// 200 tasks through the three servers, 8 at a time; the leader is
	// killed once half are in.
	const tasks = 200
	leader := f.servers[0]
	for _, s := range f.servers {
		if st, err := getState(s); err == nil && st.Leader {
			leader = s
		}
	}
	var survivors []*proc
	for _, s := range f.servers {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	var opts encoders.Options
	if err := json.Unmarshal([]byte(`{"format":"webp","width":64}`), &opts); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, tasks)
	var killOnce sync.Once
	var created sync.WaitGroup
	next := make(chan int)
	for range 8 {
		created.Add(1)
		go func() {
			defer created.Done()
			for i := range next {
				if i == tasks/2 {
					killOnce.Do(func() { leader.Kill(t) })
				}
				for try := 0; ; try++ {
					s := survivors[rand.IntN(len(survivors))]
					if i < tasks/2 {
						s = f.servers[rand.IntN(len(f.servers))]
					}
					c := client.New(s.URL(), testAPIKey)
					task, err := c.Create(ctx, api.CreateTaskRequest{Kind: "image", Input: f.files.URL + "/still.mp4",
						Options: opts}, client.CreateOptions{IdempotencyKey: fmt.Sprintf("wh-%d", i)})
					if err == nil {
						ids[i] = task.ID
						break
					}
					if try > 20 {
						t.Errorf("create task %d: %v", i, err)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	for i := range tasks {
		next <- i
	}
	close(next)
	created.Wait()
	users := client.New(survivors[0].URL(), testAPIKey)
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		task, err := users.Wait(wctx, id, 200*time.Millisecond, nil)
		cancel()
		if err != nil || task.Status != api.TaskCompleted {
			t.Fatalf("task %s: %v %+v", id, err, task)
		}
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	wait.For(t, "every task.completed at the receiver", 2*time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		done := map[string]bool{}
		for _, r := range got {
			if r.Type == "task.completed" && r.Valid && r.Answered != "late" && r.Answered != float64(500) {
				done[r.Task] = true
			}
		}
		for id := range want {
			if !done[id] {
				return fmt.Errorf("%d of %d tasks' task.completed taken", len(done), tasks)
			}
		}
		return nil
	})

	mu.Lock()
	defer mu.Unlock()
	first := map[string]received{} // by webhook-id, the first request answered 2xx
	requests, invalid, dups, refused := 0, 0, 0, 0
	var latencies []float64
	order := map[string][]string{} // task → event types in the order first taken
	for _, r := range got {
		requests++
		if !r.Valid {
			invalid++
			continue
		}
		if r.ID != r.BodyID || !strings.HasPrefix(r.ID, "evt_") {
			t.Errorf("webhook-id %q for event %q: the event id, on every attempt", r.ID, r.BodyID)
		}
		if r.Answered != float64(204) {
			refused++ // answered 500, or after the sender gave up: retried
			continue
		}
		if _, seen := first[r.ID]; seen {
			dups++
			continue
		}
		first[r.ID] = r
		order[r.Task] = append(order[r.Task], r.Type)
		if r.Type == "task.completed" {
			latencies = append(latencies, float64(r.At-r.CreatedAt))
		}
	}
	if invalid > 0 {
		t.Errorf("%d requests did not verify with standardwebhooks", invalid)
	}
	for _, id := range ids {
		if o := order[id]; !slices.Equal(o, []string{"task.created", "task.completed"}) {
			t.Errorf("task %s: events taken in the order %v, want task.created then task.completed", id, o)
		}
	}
	sort.Float64s(latencies)
	pct := func(p float64) float64 { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	t.Logf("%d tasks, leader %s killed at task %d: %d requests (%d failed on purpose), %d events delivered, %d delivered twice or more; task.completed commit → first 2xx p50 %.0f ms, p99 %.0f ms (retries included)",
		tasks, leader.name, tasks/2, requests, refused, len(first), dups, pct(0.5), pct(0.99))
}

func ptr[T any](v T) *T { return &v }
