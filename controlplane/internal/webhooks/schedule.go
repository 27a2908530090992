package webhooks

import (
	"net/http"
	"strconv"
	"time"
)

// Schedule is how long after each failed attempt the next one is made
// (Svix's): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. After the last a
// message has failed for good; it can still be retried by hand.
var Schedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Jitter is the spread of each delay: ±20 %.
const Jitter = 0.2

// DisableAfter is how long an endpoint may fail every attempt before it
// is disabled.
const DisableAfter = 5 * 24 * time.Hour

// minThrottle is the least delay after an answer that asks to slow down
// (429) or a timeout.
const minThrottle = time.Minute

// Result is what one attempt came to.
type Result int

// Results of an attempt.
const (
	// Delivered: a 2xx answer.
	Delivered Result = iota
	// Failed: any other answer, a 3xx included (never followed), or no
	// answer: a timeout, a refused or reset connection.
	Failed
	// Throttled: 429, 502, 503 or 504: failed, and the receiver may have
	// said when to come back (Retry-After).
	Throttled
	// Gone: 410: the receiver wants no more; the endpoint is disabled.
	Gone
	// Blocked: the endpoint's address is not a public one (it changed
	// since the endpoint was created): failed, and no packet was sent.
	Blocked
)

func (r Result) String() string {
	switch r {
	case Delivered:
		return "delivered"
	case Throttled:
		return "throttled"
	case Gone:
		return "gone"
	case Blocked:
		return "blocked"
	}
	return "failed"
}

// Classify says what an answer with status means (0: none came).
func Classify(status int) Result {
	switch {
	case status >= 200 && status < 300:
		return Delivered
	case status == http.StatusGone:
		return Gone
	case status == http.StatusTooManyRequests, status == http.StatusBadGateway, status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		return Throttled
	}
	return Failed
}

// Next is when, after attempt number attempt (1 for the first) failed,
// the next is made, and whether one is: the schedule's delay, spread by
// jitter (a draw in [-1, 1], made by the leader before it records the
// attempt), at least a minute after a timeout or a throttling answer, and
// for a throttling answer with Retry-After, that many seconds clamped to
// [delay, 2 × delay]. It is false after the last delay of the schedule.
func Next(attempt int, res Result, timedOut bool, retryAfter time.Duration, jitter float64) (time.Duration, bool) {
	return nextIn(Schedule, minThrottle, attempt, res, timedOut, retryAfter, jitter)
}

// nextIn is Next on another schedule, with another least delay after a
// throttling answer or a timeout (an Outbox's Delays and Throttle).
func nextIn(schedule []time.Duration, throttle time.Duration, attempt int, res Result, timedOut bool, retryAfter time.Duration, jitter float64) (time.Duration, bool) {
	if attempt < 1 || attempt > len(schedule) || res == Delivered || res == Gone {
		return 0, false
	}
	d := schedule[attempt-1]
	d += time.Duration(float64(d) * Jitter * max(-1, min(1, jitter)))
	if timedOut || res == Throttled {
		d = max(d, throttle)
	}
	if res == Throttled && retryAfter > 0 {
		d = min(max(retryAfter, d), 2*d)
	}
	return d, true
}

// RetryAfter reads a Retry-After header: seconds, or an HTTP date (from
// now); 0 when absent or unreadable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
