package host

import (
	"slices"
	"strings"
	"sync"

	"github.com/ittybit-oss/ittybit/encoders"
)

// candidate is one way to run an encode: a plugin and one of its rows.
type candidate struct {
	in  *instance
	cap encoders.Capability
}

// sessionKey names what a session limit counts: a plugin's device.
func (c candidate) sessionKey() string { return c.cap.Plugin + "\x00" + c.cap.Device }

// rank orders candidates: hardware before software (the reason to have a
// GPU), external plugins before built-in ones (an operator who installs a
// plugin for a codec wants it used), then plugins in their order.
func rank(c candidate, order int) [3]int {
	hw, ext := 1, 1
	if c.cap.Backend.Hardware() {
		hw = 0
	}
	if !c.in.builtin {
		ext = 0
	}
	return [3]int{hw, ext, order}
}

// candidates returns, best first, the available rows of plugins for a
// video codec. For codec "" (audio, images) only the built-in software
// plugin qualifies.
func candidates(plugins []*instance, codec string) []candidate {
	type ranked struct {
		c candidate
		r [3]int
	}
	var rs []ranked
	for order, in := range plugins {
		if codec == "" {
			if in.builtin && in.name == "software" {
				return []candidate{{in: in, cap: encoders.Capability{Plugin: in.name, Backend: encoders.BackendSoftware, Available: true}}}
			}
			continue
		}
		for _, c := range in.capabilities() {
			if c.Available && c.Codec == codec && c.Backend.Known() {
				cand := candidate{in: in, cap: c}
				rs = append(rs, ranked{cand, rank(cand, order)})
			}
		}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return slices.Compare(a.r[:], b.r[:]) })
	out := make([]candidate, len(rs))
	for i, r := range rs {
		out[i] = r.c
	}
	return out
}

// softwareRetry returns the built-in software plugin's row for codec (the
// plugin itself for audio and images), where a failed encode is retried.
func softwareRetry(plugins []*instance, codec string) (candidate, bool) {
	for _, c := range candidates(plugins, codec) {
		if c.in.builtin && c.cap.Backend == encoders.BackendSoftware {
			return c, true
		}
	}
	return candidate{}, false
}

// unavailableReasons says why no plugin can encode codec, for the error.
func unavailableReasons(plugins []*instance, codec string) string {
	var why []string
	for _, in := range plugins {
		for _, c := range in.capabilities() {
			if c.Codec == codec && !c.Available && c.Reason != "" {
				why = append(why, c.Plugin+": "+c.Reason)
			}
		}
	}
	slices.Sort(why)
	return strings.Join(slices.Compact(why), "; ")
}

// sessions counts the encodes running per plugin device, against its
// capability's MaxSessions.
type sessions struct {
	mu   sync.Mutex
	used map[string]int
}

// acquire takes n sessions of key, whose limit is max (0: none), and
// returns their release, or false when too few are free.
func (s *sessions) acquire(key string, n, max int) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used == nil {
		s.used = map[string]int{}
	}
	if max > 0 && s.used[key]+n > max {
		return nil, false
	}
	s.used[key] += n
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.used[key] -= n
		})
	}, true
}

// sessionsNeeded is how many encoder sessions a plan opens: one per video
// stream, so one per rendition of an HLS ladder, and one for a part of a
// split encode (a rendition, a run of one, or a run of the picture).
func sessionsNeeded(p encoders.Plan) int {
	if p.HLS != nil && p.Part == nil {
		return max(len(p.HLS.Renditions), 1)
	}
	return 1
}

// codecOf is the video codec a task encodes, or "" for audio and images.
func codecOf(s encoders.Spec) string {
	switch s.Kind {
	case encoders.KindVideo:
		return encoders.Defaults(s.Kind, s.Options, s.Output).Codec
	case encoders.KindAdaptive:
		return encoders.CodecH264
	}
	return ""
}
