package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// mustCluster starts a three-node cluster: a with --bootstrap, b joining
// through a, c joining through b (a follower, which forwards the join to
// the leader). It returns once all three have applied the same state.
func mustCluster(tb testing.TB, extra ...string) []*proc {
	tb.Helper()
	return mustClusterOf(tb, "", extra...)
}

// mustClusterOf is mustCluster running the binary bin ("": the one built
// for the tests).
func mustClusterOf(tb testing.TB, bin string, extra ...string) []*proc {
	tb.Helper()
	a := mustServerOf(tb, bin, "a", append([]string{"--bootstrap"}, extra...)...)
	mustReady(tb, a)
	b := mustServerOf(tb, bin, "b", append([]string{"--join", a.URL()}, extra...)...)
	mustReady(tb, b)
	c := mustServerOf(tb, bin, "c", append([]string{"--join", b.URL()}, extra...)...)
	mustReady(tb, c)
	nodes := []*proc{a, b, c}
	waitSameState(tb, 20*time.Second, nodes...)
	return nodes
}

// TestCluster runs the task API (README.md, The API; /openapi.json) against a cluster of three
// `ittybit server` processes, sending each request to another node.
func TestCluster(t *testing.T) {
	t.Parallel()
	nodes := mustCluster(t)
	node := func(i int) *proc { return nodes[i%len(nodes)] }

	t.Run("seed examples answer 201 in the seed's shape", func(t *testing.T) {
		for i, name := range seedNames {
			t.Run(name, func(t *testing.T) {
				body := seedBody(t, name)
				sent := time.Now()
				r := mustSend(t, "POST", node(i).URL()+"/tasks", body)
				received := time.Now()
				if r.Status != http.StatusCreated {
					t.Fatalf("POST /tasks to %s: got %s, want 201", node(i).name, r)
				}
				checkSeed201(t, r.Body, body, sent, received)
				var task api.Task
				if err := json.Unmarshal(r.Body, &task); err != nil {
					t.Fatal(err)
				}
				if loc := r.Header.Get("Location"); loc != "/tasks/"+task.ID {
					t.Errorf("Location %q, want /tasks/%s", loc, task.ID)
				}
				// Read back through another node: the same object.
				got := mustSend(t, "GET", node(i+1).URL()+"/tasks/"+task.ID, nil)
				if got.Status != http.StatusOK {
					t.Fatalf("GET /tasks/%s via %s: %s", task.ID, node(i+1).name, got)
				}
				if diff := cmp.Diff(mustJSON(t, r.Body), mustJSON(t, got.Body)); diff != "" {
					t.Errorf("GET differs from the 201 (-201 +GET):\n%s", diff)
				}
			})
		}
	})

	t.Run("errors of the contract's table", func(t *testing.T) {
		const in = `"input":"https://example.com/upload.mov"`
		big := `{` + in + `,"kind":"video","metadata":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}`
		tests := []struct {
			name         string
			method, path string
			body         string
			hdr          []string
			status       int
			kind         ittybit.ErrorKind
		}{
			{"missing input", "POST", "/tasks", `{"kind":"video"}`, nil, 400, "input_required"},
			{"bad URL scheme", "POST", "/tasks", `{"input":"ftp://example.com/a.mov","kind":"video"}`, nil, 400, "invalid_input"},
			{"malformed URL", "POST", "/tasks", `{"input":"https://exa mple.com/%zz","kind":"video"}`, nil, 400, "invalid_input"},
			{"loopback input", "POST", "/tasks", `{"input":"http://127.0.0.1/a.mov","kind":"video"}`, nil, 400, "invalid_input"},
			{"metadata address", "POST", "/tasks", `{"input":"http://169.254.169.254/latest","kind":"video"}`, nil, 400, "invalid_input"},
			{"missing kind", "POST", "/tasks", `{` + in + `}`, nil, 400, "invalid_kind"},
			{"unknown kind", "POST", "/tasks", `{` + in + `,"kind":"hologram"}`, nil, 400, "invalid_kind"},
			{"unknown format", "POST", "/tasks", `{` + in + `,"kind":"video","options":{"format":"gif"}}`, nil, 400, "invalid_format"},
			{"codec and container", "POST", "/tasks", `{` + in + `,"kind":"video","options":{"format":"webm","codec":"h264"}}`, nil, 400, "invalid_codec"},
			{"unknown codec", "POST", "/tasks", `{` + in + `,"kind":"video","options":{"codec":"mpeg2"}}`, nil, 400, "invalid_codec"},
			{"option out of range", "POST", "/tasks", `{` + in + `,"kind":"video","options":{"fps":1000}}`, nil, 400, "invalid_option"},
			{"unknown option", "POST", "/tasks", `{` + in + `,"kind":"audio","options":{"width":640}}`, nil, 400, "invalid_option"},
			{"background without contain", "POST", "/tasks", `{` + in + `,"kind":"image","options":{"fit":"cover","background":"#000000"}}`, nil, 400, "invalid_option"},
			{"end before start", "POST", "/tasks", `{` + in + `,"kind":"video","options":{"start":5,"end":2}}`, nil, 400, "invalid_option"},
			{"output not s3", "POST", "/tasks", `{` + in + `,"kind":"video","output":"https://example.com/out.mp4"}`, nil, 400, "invalid_output"},
			{"body an array", "POST", "/tasks", `[1,2]`, nil, 400, "invalid_json"},
			{"body malformed", "POST", "/tasks", `{"input":`, nil, 400, "invalid_json"},
			{"unknown field", "POST", "/tasks", `{` + in + `,"kind":"video","callback_url":"https://example.com/hook"}`, nil, 400, "invalid_json"},
			{"unknown priority", "POST", "/tasks", `{` + in + `,"kind":"video","priority":1}`, nil, 400, "invalid_option"},
			{"no Authorization", "POST", "/tasks", `{` + in + `,"kind":"video"}`, []string{"Authorization", ""}, 401, "token_missing"},
			{"wrong API key", "GET", "/tasks", "", []string{"Authorization", "Bearer nope"}, 401, "token_invalid"},
			{"node token on the task API", "GET", "/tasks", "", []string{"Authorization", "Bearer " + testNodeToken}, 401, "token_invalid"},
			{"API key on an internal route", "GET", "/internal/state", "", nil, 401, "token_invalid"},
			{"no such task", "GET", "/tasks/task_01jnotthere", "", nil, 404, "not_found"},
			{"cancel no such task", "POST", "/tasks/task_01jnotthere/cancel", "", nil, 404, "not_found"},
			{"no such route", "GET", "/jobs", "", nil, 404, "not_found"},
			{"body over the limit", "POST", "/tasks", big, nil, 413, "payload_too_large"},
			{"bad list cursor", "GET", "/tasks?after=task_01jnotthere", "", nil, 400, "invalid_option"},
			{"list limit out of range", "GET", "/tasks?limit=101", "", nil, 400, "invalid_option"},
			{"method not allowed", "DELETE", "/tasks", "", nil, 405, "method_not_allowed"},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var body []byte
				if tc.body != "" {
					body = []byte(tc.body)
				}
				r := mustSend(t, tc.method, node(i).URL()+tc.path, body, tc.hdr...)
				checkError(t, r, tc.status, tc.kind)
			})
		}
	})

	t.Run("idempotent replay through other nodes, and conflict", func(t *testing.T) {
		before := waitSameState(t, 10*time.Second, nodes...)
		key := []string{"Idempotency-Key", "order-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
		first := mustSend(t, "POST", nodes[1].URL()+"/tasks", []byte(`{"input":"https://example.com/replay.mov","kind":"audio","metadata":{"order":7,"by":"b"}}`), key...)
		if first.Status != http.StatusCreated {
			t.Fatalf("first create: %s", first)
		}
		// The same request, spaced and ordered differently, to two other nodes.
		for _, p := range []*proc{nodes[2], nodes[0]} {
			again := mustSend(t, "POST", p.URL()+"/tasks", []byte(`{ "metadata": {"by":"b", "order":7}, "kind": "audio",  "input": "https://example.com/replay.mov" }`), key...)
			if again.Status != http.StatusCreated {
				t.Fatalf("replay via %s: %s", p.name, again)
			}
			if diff := cmp.Diff(mustJSON(t, first.Body), mustJSON(t, again.Body)); diff != "" {
				t.Errorf("replay via %s returned another task (-first +replay):\n%s", p.name, diff)
			}
		}
		conflict := mustSend(t, "POST", nodes[2].URL()+"/tasks", []byte(`{"input":"https://example.com/other.mov","kind":"audio"}`), key...)
		checkError(t, conflict, http.StatusConflict, "idempotency_conflict")
		// Without a key, the same body twice is two tasks.
		t1 := mustCreate(t, nodes[0].URL(), `{"input":"https://example.com/twice.mov","kind":"image"}`)
		t2 := mustCreate(t, nodes[1].URL(), `{"input":"https://example.com/twice.mov","kind":"image"}`)
		if t1.ID == t2.ID {
			t.Errorf("two creates without a key returned the same task %s", t1.ID)
		}
		after := waitSameState(t, 10*time.Second, nodes...)
		if n := after.Tasks - before.Tasks; n != 3 {
			t.Errorf("%d tasks were stored, want 3 (one replayed twice, two without a key)", n)
		}
	})

	t.Run("cancel, then task_finished", func(t *testing.T) {
		task := mustCreate(t, nodes[0].URL(), `{"input":"https://example.com/cancel.mov","kind":"video"}`)
		r := mustSend(t, "POST", nodes[1].URL()+"/tasks/"+task.ID+"/cancel", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("cancel via b: %s", r)
		}
		var got api.Task
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Status != api.TaskCancelled || got.FinishedAt == nil || got.UpdatedAt < got.CreatedAt {
			t.Errorf("cancelled task: status %s, finished_at %v, updated_at %d", got.Status, got.FinishedAt, got.UpdatedAt)
		}
		for _, st := range got.Steps {
			if st.Status != api.StepCancelled {
				t.Errorf("step %s is %s, want cancelled", st.Kind, st.Status)
			}
		}
		read := mustSend(t, "GET", nodes[2].URL()+"/tasks/"+task.ID, nil)
		if diff := cmp.Diff(mustJSON(t, r.Body), mustJSON(t, read.Body)); diff != "" {
			t.Errorf("GET via c differs from the cancel's answer (-cancel +GET):\n%s", diff)
		}
		checkError(t, mustSend(t, "POST", nodes[2].URL()+"/tasks/"+task.ID+"/cancel", nil), http.StatusConflict, "task_finished")
	})

	t.Run("list with cursors both ways and filters", func(t *testing.T) {
		testList(t, nodes)
	})

	t.Run("a leader stopped with SIGTERM hands off leadership first", func(t *testing.T) {
		var leader *proc
		var rest []*proc
		for _, p := range nodes {
			if s, err := getState(p); err == nil && s.Leader {
				leader = p
			} else {
				rest = append(rest, p)
			}
		}
		if leader == nil {
			t.Fatal("no leader")
		}
		leader.Stop(t)
		stopped := time.Now()
		if !leader.logged("handed off leadership") {
			t.Errorf("%s stopped without handing off leadership:\n%s", leader.name, leader.tail(20))
		}
		wait.For(t, "a new leader among the others", 10*time.Second, func() error {
			for _, p := range rest {
				if s, err := getState(p); err == nil && s.Leader {
					return nil
				}
			}
			return errors.New("no leader yet")
		})
		mustCreate(t, rest[0].URL(), `{"input":"https://example.com/handoff.mov","kind":"video"}`)
		t.Logf("a write through %s committed %v after %s stopped", rest[0].name, time.Since(stopped).Round(time.Millisecond), leader.name)
		leader.mustStart(t)
		mustReady(t, nodes...)
		waitSameState(t, 20*time.Second, nodes...)
	})

	t.Run("no quorum is 503 unavailable, a restarted node restores it", func(t *testing.T) {
		nodes[1].Stop(t)
		nodes[2].Stop(t)
		start := time.Now()
		r := mustSend(t, "POST", nodes[0].URL()+"/tasks", []byte(`{"input":"https://example.com/q.mov","kind":"video"}`))
		checkError(t, r, http.StatusServiceUnavailable, "unavailable")
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("Retry-After %q, want a whole number of seconds", r.Header.Get("Retry-After"))
		}
		t.Logf("503 after %v", time.Since(start).Round(time.Millisecond))
		wait.For(t, "a's /readyz to report no leader", 10*time.Second, func() error {
			if r := mustSend(t, "GET", nodes[0].URL()+"/readyz", nil); r.Status != http.StatusServiceUnavailable {
				return fmt.Errorf("readyz %s", r)
			}
			return nil
		})
		nodes[1].mustStart(t)
		mustReady(t, nodes[0], nodes[1])
		mustCreate(t, nodes[0].URL(), `{"input":"https://example.com/quorum-again.mov","kind":"video"}`)
		waitSameState(t, 20*time.Second, nodes[0], nodes[1])
	})
}

// checkError checks an error answer: status, kind and a message.
func checkError(tb testing.TB, r reply, status int, kind ittybit.ErrorKind) {
	tb.Helper()
	if r.Status != status {
		tb.Errorf("got %s, want %d %s", r, status, kind)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	e := r.apiError(tb)
	if e.Kind != kind || e.Message == "" {
		tb.Errorf("error {kind %q, message %q}, want kind %q and a message", e.Kind, e.Message, kind)
	}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && r.Header.Get("Retry-After") == "" {
		tb.Errorf("%d without Retry-After", status)
	}
}

// page is one GET /tasks answer, reduced to ids.
type page struct {
	ids  []string
	more bool
}

func listPage(tb testing.TB, base, query string) page {
	tb.Helper()
	r := mustSend(tb, "GET", base+"/tasks?"+query, nil)
	if r.Status != http.StatusOK {
		tb.Fatalf("GET /tasks?%s: %s", query, r)
	}
	var l api.List[api.Task]
	if err := json.Unmarshal(r.Body, &l); err != nil {
		tb.Fatal(err)
	}
	if l.Object != "list" || l.Data == nil {
		tb.Errorf("GET /tasks?%s: object %q, data %v; want a list with a data array", query, l.Object, l.Data)
	}
	p := page{more: l.HasMore}
	for _, t := range l.Data {
		p.ids = append(p.ids, t.ID)
	}
	return p
}

// walk follows cursors from query (which must not hold the cursor) for as
// long as has_more says, three tasks a page, starting at cursor start
// (none when ""). With param "after" each next page starts after the last
// id; with "before" it ends before the first, and pages are prepended. It
// returns every id in list order.
func walk(tb testing.TB, base, query, param, start string) []string {
	tb.Helper()
	var all []string
	cursor := start
	for pages := 0; ; pages++ {
		q := query + "&limit=3"
		if cursor != "" {
			q += "&" + param + "=" + cursor
		}
		p := listPage(tb, base, q)
		if len(p.ids) > 3 || (p.more && len(p.ids) < 3) {
			tb.Fatalf("GET /tasks?%s: %d tasks, has_more %v", q, len(p.ids), p.more)
		}
		if param == "after" {
			all = append(all, p.ids...)
		} else {
			all = append(slices.Clone(p.ids), all...)
		}
		if !p.more {
			return all
		}
		if param == "after" {
			cursor = p.ids[len(p.ids)-1]
		} else {
			cursor = p.ids[0]
		}
		if pages > 1000 {
			tb.Fatal("more than 1000 pages")
		}
	}
}

func testList(t *testing.T, nodes []*proc) {
	kinds := []string{"video", "audio", "image", "adaptive_video", "video", "audio", "image"}
	var mine []string
	for i, k := range kinds {
		task := mustCreate(t, nodes[i%3].URL(), fmt.Sprintf(`{"input":"https://example.com/list-%d.mov","kind":%q}`, i, k))
		mine = append(mine, task.ID)
	}
	cancelled := mine[2]
	if r := mustSend(t, "POST", nodes[0].URL()+"/tasks/"+cancelled+"/cancel", nil); r.Status != http.StatusOK {
		t.Fatalf("cancel: %s", r)
	}

	base := nodes[1].URL()
	var asc []string
	var byKind = map[string][]string{}
	var byStatus = map[string][]string{}
	for _, raw := range listAll(t, base) {
		var task api.Task
		if err := json.Unmarshal(raw, &task); err != nil {
			t.Fatal(err)
		}
		asc = append(asc, task.ID)
		byKind[string(task.Kind)] = append(byKind[string(task.Kind)], task.ID)
		byStatus[string(task.Status)] = append(byStatus[string(task.Status)], task.ID)
	}
	if len(asc) < len(mine) || !slices.Equal(asc[len(asc)-len(mine):], mine) {
		t.Fatalf("the newest tasks are not the %d just created, in order:\nlist %v\nmine %v", len(mine), asc, mine)
	}
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	n := len(asc)

	tests := []struct {
		name               string
		base, query, param string
		start              string
		want               []string
	}{
		{"desc, after cursors", nodes[0].URL(), "order=desc", "after", "", desc},
		{"default order is desc", nodes[2].URL(), "", "after", "", desc},
		{"asc, after cursors", nodes[1].URL(), "order=asc", "after", "", asc},
		{"desc, before cursors from the oldest", nodes[2].URL(), "order=desc", "before", asc[0], desc[:n-1]},
		{"asc, before cursors from the newest", nodes[0].URL(), "order=asc", "before", desc[0], asc[:n-1]},
		{"desc, after a task in the middle", nodes[1].URL(), "order=desc", "after", mine[3], desc[slices.Index(desc, mine[3])+1:]},
		{"kind filter", nodes[2].URL(), "kind=audio&order=asc", "after", "", byKind["audio"]},
		{"kind filter, desc, before", nodes[0].URL(), "kind=video&order=desc", "before", byKind["video"][0], reversed(byKind["video"][1:])},
		{"status filter", nodes[1].URL(), "status=cancelled&order=asc", "after", "", byStatus["cancelled"]},
		{"status and kind", nodes[2].URL(), "status=queued&kind=image&order=asc", "after", "", intersect(byStatus["queued"], byKind["image"])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := walk(t, tc.base, tc.query, tc.param, tc.start)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	if !slices.Contains(byStatus["cancelled"], cancelled) || slices.Contains(byStatus["queued"], cancelled) {
		t.Errorf("the cancelled task %s is not listed as cancelled only", cancelled)
	}
	if slices.Contains(byKind["audio"], mine[0]) || !slices.Contains(byKind["audio"], mine[1]) {
		t.Errorf("kind filter: audio lists %v", byKind["audio"])
	}
	// The first and last pages in each direction.
	for _, tc := range []struct {
		query string
		want  page
	}{
		{"limit=2", page{desc[:2], true}},
		{"limit=2&order=asc", page{asc[:2], true}},
		{"limit=2&after=" + asc[1] + "&order=desc", page{ids: []string{asc[0]}}},
		{"limit=2&before=" + asc[1] + "&order=asc", page{ids: []string{asc[0]}}},
		{"limit=100&before=" + desc[0], page{ids: nil}},
	} {
		got := listPage(t, nodes[0].URL(), tc.query)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(page{})); diff != "" {
			t.Errorf("GET /tasks?%s (-want +got):\n%s", tc.query, diff)
		}
	}
}

func reversed(s []string) []string {
	c := slices.Clone(s)
	slices.Reverse(c)
	return c
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestRateLimit runs one node with --rate-limit 1 (burst 2): a quick run of
// creates gets 429 rate_limited with Retry-After.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	p := mustServer(t, "solo", "--bootstrap", "--rate-limit", "1")
	mustReady(t, p)
	var r reply
	for i := 0; i < 20; i++ {
		r = mustSend(t, "POST", p.URL()+"/tasks", []byte(fmt.Sprintf(`{"input":"https://example.com/rl-%d.mov","kind":"video"}`, i)))
		if r.Status != http.StatusCreated {
			break
		}
	}
	checkError(t, r, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want a whole number of seconds", r.Header.Get("Retry-After"))
	}
	// Health and readiness are not limited.
	for i := 0; i < 5; i++ {
		if h := mustSend(t, "GET", p.URL()+"/healthz", nil); h.Status != http.StatusOK {
			t.Fatalf("healthz while rate limited: %s", h)
		}
	}
}
