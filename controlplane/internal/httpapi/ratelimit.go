package httpapi

import (
	"math"
	"sync"

	"golang.org/x/time/rate"
)

// limiter keeps a token bucket per API key.
type limiter struct {
	rps     float64
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(rps float64) *limiter {
	return &limiter{rps: rps, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for key, whose own rate is rps (0: the limiter's);
// when none is left it returns how many seconds to wait.
func (l *limiter) allow(key string, rps float64) (int, bool) {
	if rps <= 0 {
		rps = l.rps
	}
	if rps <= 0 {
		return 0, true
	}
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(rate.Limit(rps), int(math.Max(1, 2*rps)))
		l.buckets[key] = b
	}
	l.mu.Unlock()
	r := b.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return int(math.Ceil(math.Max(d.Seconds(), 1))), false
	}
	return 0, true
}
