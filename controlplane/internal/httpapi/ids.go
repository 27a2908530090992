package httpapi

import (
	"math/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// idSource makes the API's ids: a prefix and a lowercase ULID, sortable
// by time, with 80 random bits that grow within a millisecond (ulid's
// monotonic entropy), so ids made in one millisecond sort in the order
// they were made. A task takes five ids (its own and its steps'), made
// in one call into one string: a create costs one allocation for all of
// them, where one ULID at a time through ulid.New cost three each.
type idSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
	id      ulid.ULID // scratch: read into under mu, never escapes
	buf     []byte
}

var ids = &idSource{entropy: ulid.Monotonic(rand.New(rand.NewSource(time.Now().UnixNano())), 0)}

// make returns one id for each prefix, all made at ms (epoch ms), in one
// string. out, when it has room, takes the ids.
func (s *idSource) make(ms int64, out []string, prefixes ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf[:0]
	for _, p := range prefixes {
		if err := s.id.SetTime(uint64(ms)); err != nil {
			panic(err) // a time before 1970 or after 10889
		}
		if err := s.entropy.MonotonicRead(uint64(ms), s.id[6:]); err != nil {
			panic(err) // the entropy of one millisecond ran out (2^80 ids)
		}
		b = append(b, p...)
		n := len(b)
		b = append(b, make([]byte, ulid.EncodedSize)...)
		_ = s.id.MarshalTextTo(b[n:])
		for i := n; i < len(b); i++ {
			if c := b[i]; c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
	}
	s.buf = b
	all := string(b)
	for _, p := range prefixes {
		n := len(p) + ulid.EncodedSize
		out = append(out, all[:n])
		all = all[n:]
	}
	return out
}

// newID returns prefix and a lowercase ULID made at now.
func newID(prefix string, now time.Time) string {
	var one [1]string
	return ids.make(now.UnixMilli(), one[:0], prefix)[0]
}
