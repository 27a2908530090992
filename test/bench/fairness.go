package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/test/fleetsim"
)

// The fairness benchmark: project A submits fairBacklog short tasks, then
// project B submits fairSmall; how long B's tasks wait to start, with the
// fair queue and with first come, first served, in the same run.
const (
	fairBacklog = 2000
	fairSmall   = 20
	fairAgents  = 2
	fairSlots   = 2
	fairStep    = 20 * time.Millisecond
)

// fairRun is what one run measured.
type fairRun struct {
	waits []float64 // B's tasks: created → started, ms
	first float64   // B's first task's wait, ms
	rateA float64   // A's tasks finished per second while B waited
	doneA int       // A's tasks finished by the time B's last started
}

func benchFairness(ctx context.Context, e *env, c config, rep *report) error {
	fair, err := fairOnce(ctx, e, "fair", nil)
	if err != nil {
		return fmt.Errorf("fair queue: %w", err)
	}
	fifo, err := fairOnce(ctx, e, "fifo", []string{"--queue-fifo"})
	if err != nil {
		return fmt.Errorf("first come, first served: %w", err)
	}
	slots := fairAgents * fairSlots
	// The fleet's rate on A's tasks alone: first come, first served gives
	// A the whole fleet while B waits.
	bound := float64(slots) / fifo.rateA * 1000 // ms for the fleet to finish `slots` tasks of A
	row := func(name string, r fairRun) []string {
		return []string{name, f1(r.first), f1(quantile(r.waits, 0.5)), f1(quantile(r.waits, 1)), fmt.Sprintf("%.0f", r.rateA), fmt.Sprint(r.doneA)}
	}
	s := &section{
		title: "11. Fair queues between projects",
		intro: fmt.Sprintf("One `ittybit server` and a simulated fleet (package fleetsim: %d agents of %d slots, every step %s). Project A submits %d tasks "+
			"(16 clients), then project B submits %d (at once, one client each): how long each of B's tasks waits to start (its `created_at` to its `started_at`, the leader's clock), "+
			"with the fair queue (projects in turn at each priority) and with `--queue-fifo` (first come, first served), in the same run. "+
			"A's rate is its tasks finished per second while B's waited (first come, first served: the whole fleet's); the bound is the time the fleet takes to finish %d (its slots) tasks of A at the rate of the whole fleet.",
			fairAgents, fairSlots, fairStep, fairBacklog, fairSmall, slots),
		header: []string{"queue", "B's first task waits ms", "B p50 ms", "B max ms", "A tasks/s", "A's tasks finished before B's last started"},
		rows:   [][]string{row("fair (default)", fair), row("first come, first served", fifo)},
		target: fmt.Sprintf("B's first task waits at most as long as the fleet takes to finish %d tasks of A (%.0f ms here); B's max wait far below first come, first served", slots, bound),
		met:    verdict(fair.first <= bound && quantile(fair.waits, 1) < quantile(fifo.waits, 1)/4),
		notes: []string{fmt.Sprintf("B's max wait with the fair queue: %.3f × first come, first served. Its %d tasks share the fleet with A's backlog half and half, so its last starts about %d tasks of its own after the first.",
			quantile(fair.waits, 1)/quantile(fifo.waits, 1), fairSmall, fairSmall)},
	}
	fmt.Fprintf(os.Stderr, "   fair: B waits p50 %.0f ms, max %.0f ms (first %.0f ms; bound %.0f ms); fifo: p50 %.0f ms, max %.0f ms\n",
		quantile(fair.waits, 0.5), quantile(fair.waits, 1), fair.first, bound, quantile(fifo.waits, 0.5), quantile(fifo.waits, 1))
	rep.add(s)
	return nil
}

func fairOnce(ctx context.Context, e *env, name string, flags []string) (fairRun, error) {
	var r fairRun
	args := append([]string{"server", "--node-id", name, "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0",
		"--data", filepath.Join(e.dir, "fair-"+name), "--bootstrap", "--rate-limit", "0"}, flags...)
	srv, err := e.start(ctx, "fair-"+name, nil, args...)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	if err := srv.waitReady(ctx); err != nil {
		return r, err
	}
	op := client.New(srv.url, apiKey)
	keyOf := func(project string) (string, error) {
		p, err := op.CreateProject(ctx, project, 0, 0)
		for err != nil && strings.Contains(err.Error(), "unavailable") && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond) // the leader learns what the voters apply
			p, err = op.CreateProject(ctx, project, 0, 0)
		}
		if err != nil {
			return "", err
		}
		k, err := op.CreateKey(ctx, api.KeyRequest{Name: &project, Project: &p.ID})
		if err != nil {
			return "", err
		}
		return k.Secret, nil
	}
	keyA, err := keyOf("a")
	if err != nil {
		return r, err
	}
	keyB, err := keyOf("b")
	if err != nil {
		return r, err
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	fleet, err := fleetsim.Start(fleetCtx, fleetsim.Config{Client: client.New(srv.url, nodeToken), Agents: fairAgents, Prefix: "fair-", Slots: fairSlots, StepTime: fairStep})
	if err != nil {
		return r, err
	}
	defer fleet.Stop()

	var created atomic.Int64
	if err := submitAs(ctx, srv.url, keyA, 16, fairBacklog, 0, "a", &created); err != nil {
		return r, fmt.Errorf("project A: %w", err)
	}
	usersB := client.New(srv.url, keyB)
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, fairSmall)
	for range fairSmall {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := usersB.Create(ctx, api.CreateTaskRequest{Kind: "image", Input: "https://example.com/b.png"}, client.CreateOptions{})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			ids = append(ids, t.ID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return r, fmt.Errorf("project B: %w", err)
	}
	// Until every one of B's tasks has started.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		r.waits, r.first = r.waits[:0], 0
		started := 0
		var firstCreated int64
		for _, id := range ids {
			t, err := usersB.Get(ctx, id)
			if err != nil {
				return r, err
			}
			if t.StartedAt == nil {
				continue
			}
			started++
			w := float64(*t.StartedAt - t.CreatedAt)
			r.waits = append(r.waits, w)
			if firstCreated == 0 || t.CreatedAt < firstCreated {
				firstCreated, r.first = t.CreatedAt, w
			}
		}
		if started == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%d of B's %d tasks started in 10 minutes", started, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A's rate while B's tasks waited: A's tasks finished between B's
	// first creation and B's last start.
	var fromB, toB int64
	for _, id := range ids {
		t, _ := usersB.Get(ctx, id)
		if fromB == 0 || t.CreatedAt < fromB {
			fromB = t.CreatedAt
		}
		toB = max(toB, *t.StartedAt)
	}
	finished, err := finishedBetween(ctx, srv.url, keyA, fromB, toB)
	if err != nil {
		return r, err
	}
	r.doneA = finished
	r.rateA = float64(finished) / (float64(max(toB-fromB, 1)) / 1000)
	return r, nil
}

// finishedBetween counts the project's tasks that finished between from
// and to (epoch ms), walking its list.
func finishedBetween(ctx context.Context, base, key string, from, to int64) (int, error) {
	n, after := 0, ""
	for {
		u := base + "/tasks?limit=100&order=asc"
		if after != "" {
			u += "&after=" + after
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		var page api.TaskList
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		for _, t := range page.Data {
			if t.FinishedAt != nil && *t.FinishedAt >= from && *t.FinishedAt <= to {
				n++
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return n, nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
}
