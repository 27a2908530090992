package server

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// batchRequests counts the batches of creates a server took from
// followers.
func batchRequests(t *testing.T, s *Server) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "ittybit_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == "POST /internal/tasks/batch" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestBatchedCreates: creates sent to a follower at once travel to the
// leader in batches, and each client still gets its own answer: its own
// task, the same task for the same Idempotency-Key, 409 for that key
// with another body, 400 for a bad request (answered by the follower).
func TestBatchedCreates(t *testing.T) {
	dir := t.TempDir()
	a, b, _ := mustThree(t, dir)
	wait.Until(t, "b to know the leader", 20*time.Second, func() bool { _, addr, ok := b.Store().Leader(); return ok && addr != "" })

	const n = 96
	type answer struct {
		code int
		task api.Task
		body string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"input":"https://example.com/%d.mov","kind":"video","options":{"width":640},"metadata":{"i":%d}}`, i, i)
			var hdr []string
			switch {
			case i%16 == 1: // the same request, eight times
				body, hdr = `{"input":"https://example.com/same.mov","kind":"audio"}`, []string{"Idempotency-Key", "same"}
			case i == 2: // that key with another body
				body, hdr = `{"input":"https://example.com/other.mov","kind":"audio"}`, []string{"Idempotency-Key", "same"}
			case i%16 == 3:
				body = `{"kind":"video","options":{"width":"wide"}}`
			}
			code, out := do(t, "POST", b.URL()+"/tasks", body, hdr...)
			answers[i] = answer{code: code, body: string(out)}
			_ = json.Unmarshal(out, &answers[i].task)
		}()
	}
	wg.Wait()

	ids := map[string]int{}
	var same, conflict string
	for i, an := range answers {
		switch {
		case i == 2:
			if an.code != 409 && an.code != 201 {
				t.Errorf("request %d: %d %s, want 409 (or 201 when it came first)", i, an.code, an.body)
			}
			if an.code == 201 {
				conflict = an.task.ID
			}
		case i%16 == 3:
			if an.code != 400 {
				t.Errorf("bad request %d: %d %s, want 400", i, an.code, an.body)
			}
		case i%16 == 1:
			if an.code != 201 && an.code != 409 {
				t.Errorf("request %d: %d %s, want 201", i, an.code, an.body)
				continue
			}
			if an.code == 409 {
				continue // request 2 took the key first
			}
			if same == "" {
				same = an.task.ID
			}
			if an.task.ID != same {
				t.Errorf("Idempotency-Key \"same\": task %s, and %s before", an.task.ID, same)
			}
		default:
			if an.code != 201 {
				t.Errorf("request %d: %d %s, want 201", i, an.code, an.body)
				continue
			}
			if j, dup := ids[an.task.ID]; dup {
				t.Errorf("requests %d and %d got the same task %s", j, i, an.task.ID)
			}
			ids[an.task.ID] = i
			if an.task.Input != fmt.Sprintf("https://example.com/%d.mov", i) || string(an.task.Metadata) != fmt.Sprintf(`{"i":%d}`, i) {
				t.Errorf("request %d got another's task: %s", i, an.body)
			}
		}
	}
	if same != "" && conflict != "" {
		t.Errorf("both bodies of Idempotency-Key \"same\" got a task: %s and %s", same, conflict)
	}
	// Every answer is the task the leader committed, as it serves it.
	for id, i := range ids {
		task, err := a.Store().State().Task(id)
		if err != nil {
			t.Fatalf("task %s (request %d) is not on the leader: %v", id, i, err)
		}
		want, _ := json.Marshal(task)
		got, _ := json.Marshal(answers[i].task)
		if string(got) != string(want) {
			t.Errorf("request %d was answered\n%s\nthe leader holds\n%s", i, got, want)
		}
	}
	batches := batchRequests(t, a)
	if batches == 0 || batches >= float64(len(ids)) {
		t.Errorf("%d creates went to the leader in %v batches, want fewer batches than creates", len(ids), batches)
	}
	t.Logf("%d creates in %v batches", len(ids), batches)
}
