package storage

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// FuzzInputHost feeds arbitrary input URLs through encoders.Validate with
// the servers' policy (CheckInputHost): an accepted input must not name a
// blocked address in any form an HTTP client would connect to, and every
// refusal must be an invalid_input or input_required problem about the
// input.
func FuzzInputHost(f *testing.F) {
	for _, in := range []string{"https://example.com/upload.mov", "http://127.0.0.1./a", "http://0x7f.1/a",
		"http://[::ffff:169.254.169.254]/latest", "http://１２７。０。０。１/a", "http://localhost:8080/a", "http://2130706433/"} {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, input string) {
		err := encoders.Validate(encoders.Spec{Kind: encoders.KindVideo, Input: input}, encoders.Policy{InputHost: CheckInputHost})
		for _, p := range ittybit.Problems(err) {
			if (p.Kind != ittybit.ErrInvalidInput && p.Kind != ittybit.ErrInputRequired) || p.Field != "input" || p.Message == "" {
				t.Fatalf("input %q: problem %+v", input, p)
			}
		}
		if err != nil {
			return
		}
		if addr, ok := literalAddr(input); ok && BlockedReason(addr) != "" {
			t.Fatalf("accepted input %q, which reaches %s (%s)", input, addr, BlockedReason(addr))
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
