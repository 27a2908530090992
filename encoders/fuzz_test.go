package encoders

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
)

// FuzzValidate feeds arbitrary request bodies through decoding, Validate
// and, for accepted specs, NewPlan against a few sources. Nothing may panic;
// every problem must carry a kind and a message; an accepted input URL must
// not name a blocked address in any form an HTTP client would connect to;
// an accepted plan must have sizes within the limits. Its seed corpus is in
// testdata/fuzz/FuzzValidate.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`))
	sources := []MediaInfo{
		media(),
		{Format: "mov", Duration: 3, Width: 721, Height: 405, FPS: 60, FrameRate: "60/1", HasVideo: true, SampleAspect: "4:3"},
		{Format: "mp3", Duration: 30, HasAudio: true, AudioChannels: 6, Codecs: Codecs{Audio: "mp3"}},
		{Format: "png_pipe", Width: 1, Height: 8192, HasVideo: true, Still: true},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var s Spec
		if json.Unmarshal(body, &s) != nil {
			return
		}
		err := Validate(s, Policy{})
		for _, p := range ittybit.Problems(err) {
			if p.Kind == "" || p.Message == "" {
				t.Fatalf("problem without kind or message: %+v", p)
			}
		}
		if err != nil {
			return
		}
		if addr, ok := literalAddr(s.Input); ok && BlockedReason(addr) != "" {
			t.Fatalf("accepted input %q, which reaches %s (%s)", s.Input, addr, BlockedReason(addr))
		}
		for _, m := range sources {
			p, err := NewPlan(s, m, BackendSoftware)
			if err != nil {
				if ittybit.KindOf(err) == ittybit.ErrInternal {
					t.Fatalf("internal error planning %s on %+v: %v", body, m, err)
				}
				continue
			}
			if v := p.Video; v != nil && (v.Width < 1 || v.Height < 1 || v.Width > MaxDimension || v.Height > MaxDimension ||
				v.ScaleWidth < 1 || v.ScaleHeight < 1 || v.X < 0 || v.Y < 0) {
				t.Fatalf("plan for %s on %+v has bad geometry %+v", body, m, v.Geometry)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("plan does not marshal: %v", err)
			}
		}
	})
}

// literalAddr is the fuzz test's own reading of an input URL's host as an
// IP address, the way an HTTP client would connect to it: trailing dots
// dropped, full-width digits and dots mapped to ASCII (IDNA does), IPv6 in
// brackets, and the inet_aton forms (decimal, octal, hex, short).
func literalAddr(input string) (netip.Addr, bool) {
	u, err := url.Parse(input)
	if err != nil || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) {
		return netip.Addr{}, false
	}
	host := strings.Map(func(r rune) rune {
		switch {
		case r >= '\uff10' && r <= '\uff19':
			return '0' + (r - '\uff10')
		case r == '\u3002' || r == '\uff0e' || r == '\uff61':
			return '.'
		}
		return r
	}, strings.ToLower(u.Hostname()))
	host = strings.TrimRight(host, ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true
	}
	return ParseLegacyIPv4(host)
}
