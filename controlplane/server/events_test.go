package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// sseEvent is one event of the live feed as a client reads it.
type sseEvent struct {
	ID, Type string
	Data     api.Event
}

// follow reads the live feed at url (with Last-Event-ID last, when set)
// into the channel it returns, until ctx ends.
func follow(ctx context.Context, t *testing.T, url, last string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 256)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.ID != "" {
					out <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				e.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e.Data); err != nil {
					t.Errorf("data line %q: %v", line, err)
				}
			}
		}
	}()
	return out
}

func take(t *testing.T, ch <-chan sseEvent, n int) []sseEvent {
	t.Helper()
	var got []sseEvent
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("the feed ended after %d events, want %d", len(got), n)
			}
			got = append(got, e)
		case <-timeout:
			t.Fatalf("%d events in 20 s, want %d", len(got), n)
		}
	}
	return got
}

// TestEventFeed: every node holds the same events with the same ids; a
// client of the live feed on a follower gets each event as it is
// committed, and after 10 s away resumes through another node with
// Last-Event-ID: every event in between exactly once, in order.
func TestEventFeed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b, c := mustThree(t, dir)

	create := func(n int) []string {
		var ids []string
		for i := range n {
			code, body := do(t, "POST", []*Server{a, b, c}[i%3].URL()+"/tasks", fmt.Sprintf(`{"input":"https://example.com/%d.jpg","kind":"image"}`, i))
			var task api.Task
			if code != 201 || json.Unmarshal(body, &task) != nil {
				t.Fatalf("create: %d %s", code, body)
			}
			ids = append(ids, task.ID)
		}
		return ids
	}
	ctx, cancel := context.WithCancel(context.Background())
	feed := follow(ctx, t, c.URL()+"/events/stream", "")
	first := create(3)
	got := take(t, feed, 3)
	for i, e := range got {
		if e.Type != "task.created" || e.Data.Type != api.EventTaskCreated || e.Data.ID != e.ID || e.Data.Data.ID != first[i] || e.Data.Object != "event" {
			t.Errorf("event %d: %+v, want task.created of %s", i, e, first[i])
		}
	}
	cancel() // away for 10 s, while tasks are created and one cancelled
	time.Sleep(100 * time.Millisecond)
	second := create(3)
	if code, body := do(t, "POST", b.URL()+"/tasks/"+second[1]+"/cancel", ""); code != 200 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	time.Sleep(10 * time.Second)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	resumed := follow(ctx, t, b.URL()+"/events/stream", got[2].ID)
	third := create(1)
	rest := take(t, resumed, 5)
	want := []struct {
		typ  api.EventType
		task string
	}{{api.EventTaskCreated, second[0]}, {api.EventTaskCreated, second[1]}, {api.EventTaskCreated, second[2]}, {api.EventTaskCancelled, second[1]}, {api.EventTaskCreated, third[0]}}
	for i, e := range rest {
		if e.Data.Type != want[i].typ || e.Data.Data.ID != want[i].task || e.ID <= got[2].ID || (i > 0 && e.ID <= rest[i-1].ID) {
			t.Errorf("resumed event %d: %s %s %s, want %s of %s, after the last one seen", i, e.ID, e.Data.Type, e.Data.Data.ID, want[i].typ, want[i].task)
		}
	}
	select {
	case e := <-resumed:
		t.Errorf("an event more than the ones between: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}

	// Every node lists the same events, with the same ids.
	var lists [3]api.List[api.Event]
	for i, s := range []*Server{a, b, c} {
		wait.Until(t, "all events on "+s.cfg.NodeID, 10*time.Second, func() bool {
			code, body := do(t, "GET", s.URL()+"/events?limit=100", "")
			return code == 200 && json.Unmarshal(body, &lists[i]) == nil && len(lists[i].Data) == 8
		})
	}
	for i := range lists[0].Data {
		if lists[0].Data[i].ID != lists[1].Data[i].ID || lists[0].Data[i].ID != lists[2].Data[i].ID {
			t.Errorf("event %d: ids %s %s %s differ between nodes", i, lists[0].Data[i].ID, lists[1].Data[i].ID, lists[2].Data[i].ID)
		}
	}
	if code, body := do(t, "GET", a.URL()+"/events?after=evt_12&type=task.done", ""); code != 400 || !strings.Contains(string(body), "accepted") {
		t.Errorf("a bad cursor and type: %d %s", code, body)
	}
	code, body := do(t, "GET", a.URL()+"/events?type=task.cancelled&task="+second[1], "")
	var cancelled api.List[api.Event]
	if json.Unmarshal(body, &cancelled); code != 200 || len(cancelled.Data) != 1 || cancelled.Data[0].Data.Status != api.TaskCancelled {
		t.Errorf("the cancelled event of %s: %d %s", second[1], code, body)
	}
}
