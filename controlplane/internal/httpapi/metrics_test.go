package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHTTPMetrics: requests count under their route pattern, never their
// path; tasks created count by kind, present at 0 from the start.
func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := mustAPI(t, func(c *Config) { c.Registry = reg })
	m := a.metrics
	if n := testutil.CollectAndCount(m.created); n != 4 {
		t.Errorf("%d tasks_created series at start, want 4 (one per kind)", n)
	}
	w := serve(a, "POST", "/tasks", `{"kind":"video","input":"https://example.com/a.mp4"}`, "Bearer "+testKey)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	serve(a, "GET", "/tasks/task_nope", "", "Bearer "+testKey)
	serve(a, "GET", "/tasks/task_other", "", "Bearer "+testKey)
	if got := testutil.ToFloat64(m.created.WithLabelValues("video")); got != 1 {
		t.Errorf("tasks_created{video} %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET /tasks/{id}", "404")); got != 2 {
		t.Errorf(`http_requests{route="GET /tasks/{id}",code="404"} %v, want 2`, got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("POST /tasks", "201")); got != 1 {
		t.Errorf(`http_requests{route="POST /tasks",code="201"} %v, want 1`, got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestRequestAttrs(t *testing.T) {
	for _, tc := range []struct {
		pattern, target string
		want            []any
	}{
		{"GET /tasks/{id}", "/tasks/task_1", []any{"method", "GET", "path", "/tasks/task_1", "task_id", "task_1", "step_id", "", "node_id", ""}},
		{"POST /internal/steps/{id}/report", "/internal/steps/step_1/report", []any{"method", "POST", "path", "/internal/steps/step_1/report", "task_id", "", "step_id", "step_1", "node_id", ""}},
		{"POST /internal/nodes/{name}/heartbeat", "/internal/nodes/n1/heartbeat", []any{"method", "POST", "path", "/internal/nodes/n1/heartbeat", "node_id", "n1"}},
		{"GET /tasks", "/tasks", []any{"method", "GET", "path", "/tasks"}},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			mux := http.NewServeMux()
			var got []any
			mux.HandleFunc(tc.pattern, func(_ http.ResponseWriter, r *http.Request) { got = requestAttrs(r) })
			method, _, _ := strings.Cut(tc.pattern, " ")
			mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, tc.target, nil))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// passWriter is a response writer that records what reaches it through
// the metrics wrapper.
type passWriter struct {
	*httptest.ResponseRecorder
	readFrom, deadline bool
	src                io.Reader // what ReadFrom was given last
}

func (p *passWriter) ReadFrom(r io.Reader) (int64, error) {
	p.readFrom, p.src = true, r
	return io.Copy(p.ResponseRecorder, r)
}

func (p *passWriter) SetWriteDeadline(time.Time) error { p.deadline = true; return nil }

// TestStatusWriterPassesThrough: the metrics wrapper around every
// response hides nothing net/http's own writer offers: a copy into it
// reaches the writer's ReadFrom (sendfile, for GET /files/), and
// http.ResponseController its deadlines (the live feed's).
func TestStatusWriterPassesThrough(t *testing.T) {
	p := &passWriter{ResponseRecorder: httptest.NewRecorder()}
	sw := &statusWriter{ResponseWriter: p, status: http.StatusOK}
	if _, err := io.CopyN(sw, strings.NewReader("file"), 4); err != nil { // as http.ServeContent copies
		t.Fatal(err)
	}
	if !p.readFrom || p.Body.String() != "file" || !sw.wrote {
		t.Errorf("io.CopyN through the wrapper: ReadFrom reached %v, body %q, wrote %v; want true, \"file\", true", p.readFrom, p.Body, sw.wrote)
	}
	// net sends a file with sendfile when it is given the file, or one
	// io.LimitedReader around it: never two.
	if lr, ok := p.src.(*io.LimitedReader); !ok {
		t.Errorf("ReadFrom got a %T, want the wrapper's piece, an *io.LimitedReader", p.src)
	} else if _, nested := lr.R.(*io.LimitedReader); nested {
		t.Errorf("ReadFrom got a LimitedReader around a LimitedReader: net would not use sendfile")
	}
	if err := http.NewResponseController(sw).SetWriteDeadline(time.Now()); err != nil || !p.deadline {
		t.Errorf("SetWriteDeadline through the wrapper: %v, reached %v", err, p.deadline)
	}
}
