package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// localStore applies webhook ops straight to a state, as the log would.
type localStore struct{ st *state.Store }

func (l localStore) State() *state.Store { return l.st }
func (l localStore) WebhookOps(_ context.Context, ops []state.WebhookOp) ([]state.WebhookResult, error) {
	return applyWebhookOps(l.st, ops), nil
}

// applyMu orders the tests' writes to a state, one at a time as the log
// applies them: the outbox writes from its goroutine, the test from its
// own.
var applyMu sync.Mutex

func applyWebhookOps(st *state.Store, ops []state.WebhookOp) []state.WebhookResult {
	applyMu.Lock()
	defer applyMu.Unlock()
	return st.ApplyWebhookOps(ops)
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTaskEvent(t *testing.T, st *state.Store, index uint64, id string, at time.Time) {
	t.Helper()
	applyMu.Lock()
	defer applyMu.Unlock()
	st.SetIndex(index)
	task := api.Task{ID: id, Object: "task", Kind: "image", Status: api.TaskQueued, CreatedAt: at.UnixMilli(), UpdatedAt: at.UnixMilli(),
		Steps: []api.Step{{ID: id + "_s0", Object: "step", Kind: "probe", Status: api.StepQueued}}}
	if res := st.CreateTasks(index, at.UnixMilli(), []state.CreateRequest{{Task: task, Scope: "req", Key: id, BodyHash: "h"}}); res[0].Task == nil {
		t.Fatalf("create %s: %+v", id, res[0])
	}
}

// TestOutboxOnAClock: on an injected clock (no sleeping for hours), a
// failing endpoint is tried on the schedule, within its jitter, until it
// gives up; after five days of failures it is disabled; 410 disables at
// once; a retry by hand is made at once and not scheduled again.
func TestOutboxOnAClock(t *testing.T) {
	var status atomic.Int32
	status.Store(500)
	var mu sync.Mutex
	var hits []time.Time
	clk := &clock{now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, clk.Now())
		mu.Unlock()
		w.WriteHeader(int(status.Load()))
	}))
	defer recv.Close()
	st := state.New()
	secret, _ := NewSecret(nil)
	t0 := clk.Now()
	applyWebhookOps(st, []state.WebhookOp{{Op: state.WebhookCreate, Now: t0.UnixMilli(), Endpoint: &state.Endpoint{
		ID: "wh_1", URL: recv.URL, Events: []string{"*"}, Secrets: []state.Secret{{Secret: secret}}, CreatedAt: t0.UnixMilli()}}})
	var draws atomic.Int32
	o := &Outbox{Store: localStore{st}, Sender: &Sender{AllowPrivate: true}, Render: func(e *state.Event) []byte { return []byte(`{}`) },
		Now: clk.Now, Jitter: func() float64 { // alternate the extremes of the spread
			if draws.Add(1)%2 == 1 {
				return 1
			}
			return -1
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	attempts := func(id string) []state.Attempt {
		d, err := st.Delivery(id)
		if err != nil {
			return nil
		}
		return d.Attempts
	}
	newTaskEvent(t, st, 1, "t1", t0)
	first := state.DeliveryID(1<<16, "wh_1")
	wait.Until(t, "the first attempt", 5*time.Second, func() bool { return len(attempts(first)) == 1 })
	// Each retry falls due at its delay, stretched or shrunk by a fifth.
	for i, delay := range Schedule {
		d, _ := st.Delivery(first)
		want := time.Duration(float64(delay) * 1.2)
		if i%2 == 1 {
			want = time.Duration(float64(delay) * 0.8)
		}
		last := d.Attempts[len(d.Attempts)-1].At
		if got := time.Duration(d.NextAt-last) * time.Millisecond; got != want {
			t.Fatalf("retry %d due %s after the attempt, want %s", i+1, got, want)
		}
		clk.Add(want - time.Millisecond)
		time.Sleep(3 * outboxTick)
		if n := len(attempts(first)); n != i+1 {
			t.Fatalf("retry %d made before it was due (%d attempts)", i+1, n)
		}
		clk.Add(time.Millisecond)
		wait.Until(t, "the retry when due", 5*time.Second, func() bool { return len(attempts(first)) == i+2 })
	}
	if d, _ := st.Delivery(first); d.Status != state.DeliveryFailed || d.NextAt != 0 || len(d.Attempts) != len(Schedule)+1 {
		t.Fatalf("after the schedule: %s, next %d, %d attempts; want failed for good", d.Status, d.NextAt, len(d.Attempts))
	}
	ep, _ := st.Endpoint("wh_1")
	if ep.Disabled != "" || ep.FailingSince != t0.UnixMilli() {
		t.Fatalf("endpoint %+v: want enabled, failing since the first attempt", ep)
	}

	// New events keep failing; five days after the first failure the
	// endpoint is disabled.
	for day := 2; ; day++ {
		clk.Add(24 * time.Hour)
		newTaskEvent(t, st, uint64(day), fmt.Sprintf("t%d", day), clk.Now())
		id := state.DeliveryID(uint64(day)<<16, "wh_1")
		if clk.Now().Sub(t0) >= DisableAfter {
			// The first failure now disables it: this day's, or a retry
			// of an earlier day's that came first.
			wait.Until(t, "disabled after five days", 5*time.Second, func() bool { e, _ := st.Endpoint("wh_1"); return e.Disabled != "" })
			if d, err := st.Delivery(id); err == nil && d.Status != state.DeliveryFailed {
				t.Errorf("a delivery of the disabled endpoint is %s, want failed", d.Status)
			}
			// The event says so, with the endpoint and none of its secrets.
			evs, _, _ := st.Events(state.EventQuery{Type: api.EventWebhookDisabled, Limit: 10})
			if len(evs) != 1 || evs[0].Endpoint == nil || evs[0].Endpoint.ID != "wh_1" || evs[0].Endpoint.Disabled == "" || len(evs[0].Endpoint.Secrets) != 0 {
				t.Errorf("webhook.disabled events: %+v, want one, of wh_1, disabled, without secrets", evs)
			}
			break
		}
		wait.Until(t, "the day's attempt", 5*time.Second, func() bool { return len(attempts(id)) == 1 })
		if ep, _ = st.Endpoint("wh_1"); ep.Disabled != "" {
			t.Fatalf("after %s of failures: disabled %q", clk.Now().Sub(t0), ep.Disabled)
		}
	}

	// Re-enabled, a retry by hand goes at once; failing, it is not
	// scheduled again.
	applyWebhookOps(st, []state.WebhookOp{{Op: state.WebhookUpdate, Now: clk.Now().UnixMilli(), ID: "wh_1", Endpoint: &state.Endpoint{URL: recv.URL, Events: []string{"*"}}}})
	applyWebhookOps(st, []state.WebhookOp{{Op: state.WebhookRetry, Now: clk.Now().UnixMilli(), ID: "wh_1", Delivery: first}})
	wait.Until(t, "the retry by hand", 5*time.Second, func() bool { return len(attempts(first)) == len(Schedule)+2 })
	if d, _ := st.Delivery(first); d.Status != state.DeliveryFailed {
		t.Errorf("a failed retry by hand is %s, want failed (not scheduled again)", d.Status)
	}

	// 410 disables at once.
	status.Store(410)
	newTaskEvent(t, st, 100, "gone", clk.Now())
	wait.Until(t, "disabled by 410", 5*time.Second, func() bool { e, _ := st.Endpoint("wh_1"); return e.Disabled != "" })
	if e, _ := st.Endpoint("wh_1"); e.Disabled != "the endpoint answered 410 Gone" {
		t.Errorf("disabled because %q", e.Disabled)
	}
}
