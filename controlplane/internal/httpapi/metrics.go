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

// wrap records every request served by mux under its matched pattern,
// and gives each response the write deadlines of stall (deadline.go).
func (m *httpMetrics) wrap(mux *http.ServeMux, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK, stall: stall}
		mux.ServeHTTP(sw, r)
		if !sw.wrote {
			sw.arm() // net/http writes the empty answer of a handler that wrote nothing
		}
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

// statusWriter keeps the status a handler answered, for the metrics, and
// the connection's write deadline (deadline.go).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	stall  time.Duration
	armed  time.Time // when the write deadline was last set
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.arm()
	s.ResponseWriter.WriteHeader(code)
}

// Write writes b in pieces of writeChunk, each under a deadline of its own.
func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	n := 0
	for {
		s.arm()
		p := b[n:]
		if len(p) > writeChunk {
			p = p[:writeChunk]
		}
		m, err := s.ResponseWriter.Write(p)
		n += m
		if err != nil || n == len(b) {
			return n, err
		}
	}
}

// ReadFrom passes a copy on to the writer below, so that a file served
// through the wrapper (GET /files/) goes out as net/http sends files,
// with sendfile, not through a buffer 32 KiB at a time; sendChunk at a
// time, each under a deadline of its own.
func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	s.wrote = true
	src, limit := r, (*io.LimitedReader)(nil)
	if lr, ok := r.(*io.LimitedReader); ok {
		// io.CopyN's; net passes one LimitedReader around an *os.File to
		// sendfile, not two.
		src, limit = lr.R, lr
	}
	var total int64
	for limit == nil || limit.N > 0 {
		s.arm()
		n := int64(sendChunk)
		if limit != nil {
			n = min(n, limit.N)
		}
		piece := &io.LimitedReader{R: src, N: n}
		var m int64
		var err error
		if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
			m, err = rf.ReadFrom(piece)
		} else {
			m, err = io.Copy(s.ResponseWriter, piece)
		}
		total += m
		if limit != nil {
			limit.N -= m
		}
		if err != nil || m < n {
			return total, err // an error, or the end of src
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush lets streaming handlers flush through the wrapper (the live
// feed), under a deadline.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		s.arm()
		f.Flush()
	}
}
