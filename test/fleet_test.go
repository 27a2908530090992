package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/test/fleetsim"
)

// TestFleetNothingStuck is the fleet benchmark's stuck tasks at small
// scale: 200 simulated agents (package fleetsim) on a lossy link to one
// server, with short heartbeat timeouts. The link loses answers to
// long-polls (the assignment was taken, the agent never saw it), reports
// on their way (the agent gives the step up, as one that lost its result
// would) and answers to reports (done, but the agent cannot tell), and
// some heartbeats. Every task must still complete, within seconds of its
// last loss rather than the ten minutes of the stall timeout: before
// steps were reconciled with what agents hold, a lost report left its
// step leased to an agent that no longer had it until the stall timeout.
func TestFleetNothingStuck(t *testing.T) {
	const agents, tasks = 200, 400
	srv := mustServer(t, "s", "--bootstrap", "--rate-limit", "0", "--min-heartbeat-ttl", "2s", "--heartbeat-grace", "1s")
	mustReady(t, srv)

	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(20, 11))
	var lost [3]atomic.Int64 // answers to polls, reports, answers to reports
	lossy := &fleetsim.Lossy{Base: &http.Transport{MaxIdleConnsPerHost: 4 * agents}, Lose: func(r *http.Request) fleetsim.Loss {
		mu.Lock()
		p := rng.Float64()
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/assignments") && p < 0.05:
			lost[0].Add(1)
			return fleetsim.LoseAnswer
		case strings.HasSuffix(r.URL.Path, "/report") && p < 0.04:
			lost[1].Add(1)
			return fleetsim.LoseRequest
		case strings.HasSuffix(r.URL.Path, "/report") && p < 0.08:
			lost[2].Add(1)
			return fleetsim.LoseAnswer
		case strings.HasSuffix(r.URL.Path, "/heartbeat") && p < 0.02:
			return fleetsim.LoseRequest
		}
		return fleetsim.Deliver
	}}
	nodes := client.New(srv.URL(), testNodeToken, client.WithHTTPClient(&http.Client{Transport: lossy, Timeout: 30 * time.Second}), client.WithRetries(20))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := fleetsim.Start(ctx, fleetsim.Config{Client: nodes, Agents: agents, StepTime: 50 * time.Millisecond, GiveUpReports: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()

	users := client.New(srv.URL(), testAPIKey)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := next.Add(1); k <= tasks; k = next.Add(1) {
				if _, err := users.Create(ctx, api.CreateTaskRequest{Kind: encoders.KindVideo, Input: fmt.Sprintf("https://example.com/%d.mov", k)}, client.CreateOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for {
		done, err := fleetsim.Completed(ctx, srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		if done == int64(tasks) {
			break
		}
		if time.Now().After(deadline) {
			left := fleetsim.Unfinished(ctx, users)
			var lines []string
			for _, l := range strings.Split(readFileOr(srv.log, ""), "\n") {
				for _, f := range strings.Fields(left) {
					if strings.HasPrefix(f, "task_") && strings.Contains(l, f) {
						lines = append(lines, l)
					}
				}
			}
			t.Fatalf("%d of %d tasks completed after %v; those left:\n%s\nwhat the server logged of them:\n%s", done, tasks, time.Since(start).Round(time.Second), left, strings.Join(lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond) // polling the server's count, with a deadline
	}
	released := strings.Count(readFileOr(srv.log, ""), `"msg":"releasing step"`)
	if lost[0].Load() == 0 || lost[1].Load() == 0 || lost[2].Load() == 0 {
		t.Errorf("the link lost too little to test anything: %d, %d, %d", lost[0].Load(), lost[1].Load(), lost[2].Load())
	}
	f := &figures{heading: "## TestFleetNothingStuck: 200 simulated agents on a lossy link",
		intro: fmt.Sprintf("`test/fleet_test.go`. One server (heartbeat TTL 4 s: 2 s minimum, 200 agents), %d simulated agents (`test/fleetsim`, 50 ms a step) "+
			"whose link loses 5%% of the answers to long-polls, 4%% of reports on their way and 4%% of the answers to reports, and 2%% of heartbeats; an agent whose "+
			"report fails gives the step up. %d video tasks from 16 clients. Before steps were reconciled with what agents hold, this left 3 of 400 tasks "+
			"leased to agents that no longer had them, until the 10-minute stall timeout.", agents, tasks)}
	f.add("tasks completed", "%d of %d, %s after the last was created", tasks, tasks, seconds(time.Since(start)))
	f.add("lost on the way", "%d answers to long-polls, %d reports, %d answers to reports", lost[0].Load(), lost[1].Load(), lost[2].Load())
	f.add("reports given up by agents", "%d", fleet.LostReports())
	f.add("steps released and run again", "%d", released)
	f.write(t)
}

// TestLostAssignmentAndReport runs two `ittybit agent` processes, x behind
// a proxy that loses what it is told to, and y direct. First the proxy
// loses every answer to x's long-polls that carries an assignment (x
// never learns of it), then every report x sends (x finished the step,
// the leader never hears). Either way the step must be released and run on
// y within one heartbeat TTL, the task must complete, and the lost
// attempt's report, delivered late, must be refused.
func TestLostAssignmentAndReport(t *testing.T) {
	const ttl = 6 * time.Second
	data := readFileOr(clips.Path(t, encoderstest.Odd), "")
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "clip.mov", time.Time{}, strings.NewReader(data))
	}))
	t.Cleanup(files.Close)
	storageDir := filepath.Join(t.TempDir(), "files")
	srv := mustServer(t, "s", "--bootstrap", "--allow-private-inputs", "--storage", storageDir,
		"--min-heartbeat-ttl", ttl.String(), "--heartbeat-grace", "1s")
	mustReady(t, srv)
	proxy := &dropProxy{target: srv.URL()}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	env := append(os.Environ(), "ITTYBIT_NODE_TOKEN="+testNodeToken)
	for name, server := range map[string]string{"x": front.URL, "y": srv.URL()} {
		p := &proc{name: name, dir: t.TempDir(), env: env}
		p.args = []string{"agent", "--name", name, "--work-dir", filepath.Join(p.dir, "work"), "--storage", storageDir,
			"--server", server, "--allow-private-inputs", "--slots", "2"}
		p.mustStart(t)
	}
	nodes := client.New(srv.URL(), testNodeToken)
	waitReadyAgents(t, nodes, 2)
	users := client.New(srv.URL(), testAPIKey)

	// run submits image tasks one by one until the proxy has lost
	// something of x's, then checks the step it concerned.
	f := &figures{heading: "## TestLostAssignmentAndReport: an agent's assignments, then its reports, lost on the way",
		intro: fmt.Sprintf("`test/fleet_test.go`. One server (heartbeat TTL %v), two `ittybit agent` processes: x behind a proxy that closes the "+
			"connection instead of answering, y direct. Image tasks one at a time until a step of x's is lost: first every answer to x's long-poll that "+
			"carries an assignment, then every report x sends; the lost report is delivered at the end.", ttl)}
	run := func(mode int32, what string) lostStep {
		proxy.mode.Store(mode)
		defer proxy.mode.Store(dropNothing)
		for range 8 {
			task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindImage, Input: files.URL + "/clip.mov"}, client.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			final := waitTask(t, users, task.ID, 2*time.Minute)
			if final.Status != api.TaskCompleted {
				t.Fatalf("%s: task %s ended %s %+v, want completed", what, task.ID, final.Status, final.Error)
			}
			lost, ok := proxy.first(task.ID)
			if !ok {
				continue // placed on y throughout: try another
			}
			s := stepOf(final, lost.step)
			if s.Node == nil || *s.Node != "y" || s.Attempt <= lost.attempt || s.Status != api.StepCompleted || s.StartedAt == nil {
				t.Fatalf("%s: step %s ended %s on %v, attempt %d; want completed on y after attempt %d", what, lost.step, s.Status, s.Node, s.Attempt, lost.attempt)
			}
			after := time.UnixMilli(*s.StartedAt).Sub(lost.at)
			f.add(what, "the %s step (attempt %d on x) started again on y %s later; the task completed", s.Kind, lost.attempt, seconds(after))
			if after > ttl {
				t.Errorf("%s: the step ran again %v after it was lost, more than one heartbeat TTL (%v)", what, after, ttl)
			}
			return lost
		}
		t.Fatalf("%s: nothing of x's was lost in 8 tasks", what)
		return lostStep{}
	}
	run(dropAssignments, "assignment lost")
	lost := run(dropReports, "report lost")

	// The lost report arrives at last: refused, the step moved on.
	r := mustSend(t, http.MethodPost, srv.URL()+"/internal/steps/"+lost.step+"/report", lost.body, "Authorization", "Bearer "+testNodeToken)
	checkError(t, r, http.StatusConflict, ittybit.ErrStaleAttempt)
	f.add("the lost report, delivered late", "%d %s", r.Status, r.apiError(t).Kind)
	f.write(t)
}

// stepOf finds a task's step by id.
func stepOf(t *api.Task, id string) api.Step {
	for _, s := range t.Steps {
		if s.ID == id {
			return s
		}
	}
	return api.Step{}
}

// What dropProxy loses.
const (
	dropNothing int32 = iota
	dropAssignments
	dropReports
)

// lostStep is something of a step that dropProxy lost: when, the step's
// attempt, and the report's body.
type lostStep struct {
	at      time.Time
	task    string
	step    string
	attempt int
	body    []byte
}

// dropProxy forwards an agent's requests to a server, losing the answers
// to long-polls that carry assignments (dropAssignments) or the reports
// (dropReports): the connection closes without an answer, as when a link
// fails.
type dropProxy struct {
	target string
	mode   atomic.Int32
	mu     sync.Mutex
	lost   []lostStep
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if p.mode.Load() == dropReports && strings.HasSuffix(r.URL.Path, "/report") {
		var rep api.StepReport
		_ = json.Unmarshal(body, &rep)
		p.record(lostStep{at: time.Now(), task: rep.TaskID, step: path.Base(path.Dir(r.URL.Path)), attempt: rep.Attempt, body: body})
		hangUp(w)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if p.mode.Load() == dropAssignments && strings.HasSuffix(r.URL.Path, "/assignments") {
		var out api.Assignments
		if json.Unmarshal(answer, &out) == nil && len(out.Assignments) > 0 {
			for _, a := range out.Assignments {
				p.record(lostStep{at: time.Now(), task: a.TaskID, step: a.StepID, attempt: a.Attempt})
			}
			hangUp(w)
			return
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func (p *dropProxy) record(l lostStep) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lost = append(p.lost, l)
}

// first returns the first loss of the task's.
func (p *dropProxy) first(task string) (lostStep, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lost {
		if l.task == task {
			return l, true
		}
	}
	return lostStep{}, false
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}
