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

// allow takes a token for key; when none is left it returns how many
// seconds to wait.
func (l *limiter) allow(key string) (int, bool) {
	if l.rps <= 0 {
		return 0, true
	}
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.rps), int(math.Max(1, 2*l.rps)))
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
