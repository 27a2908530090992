package storage

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/ittybit-oss/ittybit"
)

// CheckInputHost refuses an input host that is not on the public internet
// as written: a loopback name, an IP address in any form a resolver reads
// that BlockedReason refuses, or a name in neither letters nor ASCII. It is
// the API's early refusal, at POST /tasks (invalid_input, field input), for
// encoders.Policy.InputHost; the Fetcher checks every address a name
// resolves to when it connects (input_blocked).
func CheckInputHost(host string) error {
	const private = "inputs must be on the public internet (a server allows private inputs only with --allow-private-inputs)"
	name := connectHost(host)
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input host %s is a loopback address; %s", host, private)
	}
	if !hasLetter(name) && !isASCII(name) {
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input host %q is neither a host name nor an IP address written in ASCII; accepted: an http://, https://, or s3:// URL", host)
	}
	if addr, err := netip.ParseAddr(name); err == nil {
		if why := BlockedReason(addr); why != "" {
			return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input host %s is %s; %s", host, why, private)
		}
		return nil
	}
	if addr, ok := ParseLegacyIPv4(name); ok {
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input host %s is the IPv4 address %s written in a non-standard form; write it in dotted decimal", host, addr)
	}
	return nil
}

// connectHost is a URL's host as an HTTP client connects to it: lower
// case, with the full-width digits and dots that IDNA maps to ASCII mapped,
// and without trailing dots ("127.0.0.1." is 127.0.0.1 to a resolver).
func connectHost(host string) string {
	h := strings.Map(func(r rune) rune {
		switch {
		case r >= '\uff10' && r <= '\uff19': // full-width digits
			return '0' + (r - '\uff10')
		case r == '\u3002' || r == '\uff0e' || r == '\uff61': // ideographic, full-width and half-width full stops
			return '.'
		}
		return r
	}, strings.ToLower(host))
	return strings.TrimRight(h, ".")
}

func hasLetter(s string) bool {
	return strings.IndexFunc(s, unicode.IsLetter) >= 0
}

func isASCII(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII }) < 0
}

// blockedPrefixes are the address ranges an input URL may not reach unless
// private inputs are allowed: anything that is not the public internet.
var blockedPrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("169.254.169.254/32"), "a cloud metadata address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "a cloud metadata address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (\"this network\") address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved (IETF protocol) address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("fc00::/7"), "a private (unique local) address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
}

// BlockedReason says why an input may not be fetched from addr ("a loopback
// address"), or returns "" when addr is a public unicast address. IPv4
// addresses inside IPv6 (mapped, NAT64, 6to4) are judged by the IPv4 address.
func BlockedReason(addr netip.Addr) string {
	addr = addr.WithZone("")
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	if addr.Is6() {
		b := addr.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(addr): // NAT64
			return BlockedReason(netip.AddrFrom4([4]byte(b[12:16])))
		case netip.MustParsePrefix("2002::/16").Contains(addr): // 6to4
			return BlockedReason(netip.AddrFrom4([4]byte(b[2:6])))
		case netip.MustParsePrefix("::/96").Contains(addr) && !addr.IsUnspecified() && addr != netip.IPv6Loopback():
			// Deprecated IPv4-compatible form, ::a.b.c.d.
			return BlockedReason(netip.AddrFrom4([4]byte(b[12:16])))
		}
	}
	if !addr.IsValid() {
		return "not a valid address"
	}
	for _, p := range blockedPrefixes {
		if p.prefix.Contains(addr) {
			return p.reason
		}
	}
	if addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "a broadcast address"
	}
	return ""
}

// HostAddr reads a URL host that is an IP address in any form a system
// resolver reads as one ("127.0.0.1.", "[::1]", "2130706433",
// "0177.0.0.1"): such a host is never a name to look up.
func HostAddr(host string) (netip.Addr, bool) {
	literal := strings.TrimRight(host, ".")
	if ip, err := netip.ParseAddr(strings.Trim(literal, "[]")); err == nil {
		return ip, true
	}
	return ParseLegacyIPv4(literal)
}

// ParseLegacyIPv4 reads the forms of an IPv4 address that inet_aton accepts
// but dotted decimal does not: "2130706433", "0x7f000001", "0177.0.0.1",
// "127.1". It reports ok only for such a non-standard form. A system
// resolver (getaddrinfo) reads these as addresses, so whatever checks
// addresses must too.
func ParseLegacyIPv4(host string) (netip.Addr, bool) {
	if host == "" || strings.Trim(host, "0123456789abcdefxABCDEFX.") != "" {
		return netip.Addr{}, false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return netip.Addr{}, false // already standard
	}
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" {
			if base != 16 {
				return netip.Addr{}, false
			}
			p = "0"
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i, v := range vals[:last] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*uint(i))
	}
	if vals[last] >= 1<<(8*uint(4-last)) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
