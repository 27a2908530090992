package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/encoders"
)

// httpMetrics counts and times requests by route pattern (never by path:
// ids would make the label set unbounded).
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	created  *prometheus.CounterVec
	// The series already used, each found once by its labels rather than
	// hashed into the vector's map for every request and task.
	createdBy map[encoders.Kind]prometheus.Counter // every kind; read only
	answered  sync.Map                             // answerKey → prometheus.Counter
	timed     sync.Map                             // route → prometheus.Observer
}

// answerKey names one series of requests: a route and a status code.
type answerKey struct {
	route string
	code  int
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ittybit_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_tasks_created_total",
			Help: "Tasks created (committed), by kind; replays of an Idempotency-Key are not counted.",
		}, []string{"kind"}),
	}
	m.createdBy = map[encoders.Kind]prometheus.Counter{}
	for _, k := range encoders.Kinds {
		m.createdBy[k] = m.created.WithLabelValues(string(k)) // 0 from the start
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.created)
	}
	return m
}

// wrap records every request served by mux under its matched pattern.
func (m *httpMetrics) wrap(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		m.answeredBy(route, sw.status).Inc()
		m.timedBy(route).Observe(time.Since(start).Seconds())
	})
}

// taskCreated counts a task created.
func (m *httpMetrics) taskCreated(k encoders.Kind) {
	if c, ok := m.createdBy[k]; ok {
		c.Inc()
		return
	}
	m.created.WithLabelValues(string(k)).Inc() // no such kind passes validation
}

// answeredBy is the counter of requests answered on route with code.
func (m *httpMetrics) answeredBy(route string, code int) prometheus.Counter {
	k := answerKey{route, code}
	if c, ok := m.answered.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.answered.LoadOrStore(k, m.requests.WithLabelValues(route, strconv.Itoa(code)))
	return c.(prometheus.Counter)
}

// timedBy is the histogram of the time to answer requests on route.
func (m *httpMetrics) timedBy(route string) prometheus.Observer {
	if o, ok := m.timed.Load(route); ok {
		return o.(prometheus.Observer)
	}
	o, _ := m.timed.LoadOrStore(route, m.duration.WithLabelValues(route))
	return o.(prometheus.Observer)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// ReadFrom passes a copy on to the writer below, so that a file served
// through the wrapper (GET /files/) goes out as net/http sends files,
// with sendfile, not through a buffer 32 KiB at a time.
func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	s.wrote = true
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(s.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach the connection (the live
// feed's write deadline).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush lets streaming handlers flush through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
