package encoders

import (
	"net/netip"
	"testing"
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
