package storage

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

func mustAddr(tb testing.TB, s string) netip.Addr {
	tb.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestParseLegacyIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"2130706433", "127.0.0.1", true},
		{"0x7f000001", "127.0.0.1", true},
		{"0177.0.0.1", "127.0.0.1", true},
		{"127.1", "127.0.0.1", true},
		{"10.1", "10.0.0.1", true},
		{"0xa9.0xfe.0xa9.0xfe", "169.254.169.254", true},
		{"127.0.0.1", "", false},
		{"example.com", "", false},
		{"deadbeef", "", false},
		{"256.1.1.1", "", false},
		{"4294967296", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := ParseLegacyIPv4(tc.in)
		if ok != tc.ok || (ok && got.String() != tc.want) {
			t.Errorf("ParseLegacyIPv4(%q) = %v, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestCheckInputHost: what POST /tasks refuses of an input's host, as the
// servers' encoders.Policy asks, with what each message must say.
func TestCheckInputHost(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		contains []string
	}{
		{"loopback", "http://127.0.0.1/a.mov", []string{"loopback", "--allow-private-inputs"}},
		{"localhost", "http://localhost:8080/a.mov", []string{"loopback"}},
		{"metadata", "http://169.254.169.254/latest/meta-data", []string{"metadata"}},
		{"private 10", "http://10.1.2.3/a.mov", []string{"private"}},
		{"private 172", "http://172.16.0.1/a.mov", []string{"private"}},
		{"private 192", "http://192.168.1.1/a.mov", []string{"private"}},
		{"ipv6 loopback", "http://[::1]/a.mov", []string{"loopback"}},
		{"mapped", "http://[::ffff:127.0.0.1]/a.mov", []string{"loopback"}},
		{"unspecified", "http://0.0.0.0/a.mov", []string{"unspecified"}},
		{"decimal", "http://2130706433/a.mov", []string{"127.0.0.1", "non-standard"}},
		{"octal", "http://0177.0.0.1/a.mov", []string{"127.0.0.1"}},
		{"hex", "http://0x7f.1/a.mov", []string{"127.0.0.1"}},
		// A trailing dot is the same host to a resolver; full-width digits
		// and dots are ASCII once an HTTP client applies IDNA.
		{"trailing dot", "http://127.0.0.1./a.mov", []string{"loopback"}},
		{"trailing dots, short form", "http://0../a.mov", []string{"0.0.0.0"}},
		{"metadata trailing dot", "http://169.254.169.254./latest", []string{"metadata"}},
		{"full-width", "http://１２７。０。０。１/a.mov", []string{"loopback"}},
		{"circled digits", "http://①②⑦.0.0.1/a.mov", []string{"ASCII"}},
	}
	policy := encoders.Policy{InputHost: CheckInputHost}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := ittybit.Problems(encoders.Validate(encoders.Spec{Kind: encoders.KindVideo, Input: tc.input}, policy))
			if len(ps) != 1 || ps[0].Kind != ittybit.ErrInvalidInput || ps[0].Field != "input" {
				t.Fatalf("%s: got %+v, want one invalid_input problem about input", tc.input, ps)
			}
			for _, want := range tc.contains {
				if !strings.Contains(ps[0].Message, want) {
					t.Errorf("message %q does not contain %q", ps[0].Message, want)
				}
			}
		})
	}
	for _, ok := range []string{"https://example.com/a.mov", "http://93.184.216.34/a", "https://[2606:4700::1111]/a", "https://exämple.de/a"} {
		if err := encoders.Validate(encoders.Spec{Kind: encoders.KindVideo, Input: ok}, policy); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestBlockedReason(t *testing.T) {
	blocked := []string{"127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254", "169.254.1.1",
		"0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254",
		"::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"}
	for _, a := range blocked {
		if BlockedReason(mustAddr(t, a)) == "" {
			t.Errorf("%s: not blocked", a)
		}
	}
	for _, a := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "100.128.0.1"} {
		if r := BlockedReason(mustAddr(t, a)); r != "" {
			t.Errorf("%s: blocked as %s", a, r)
		}
	}
}
