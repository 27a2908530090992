package server

import (
	"net"
	"testing"
)

func TestAdvertised(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9090", "10.1.2.3:8080", "[::1]:9090", "node-1.internal:9090"} {
		if got, err := advertised(addr); err != nil || got != addr {
			t.Errorf("advertised(%q) = %q, %v; want it as given", addr, got, err)
		}
	}
	ip, err := hostIP()
	if err != nil {
		t.Skipf("this machine has no address other hosts could reach: %v", err)
	}
	for _, addr := range []string{"0.0.0.0:9090", "[::]:9090", ":9090"} {
		got, err := advertised(addr)
		if err != nil || got != net.JoinHostPort(ip.String(), "9090") {
			t.Errorf("advertised(%q) = %q, %v; want %s on port 9090", addr, got, err, ip)
		}
	}
}
