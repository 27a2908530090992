// Package dnstest runs a small authoritative DNS server on loopback for
// tests: the names a test sets answer A and SRV queries, and nothing else
// does (NXDOMAIN). Servers and agents reach it through --dns-server.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server answers the names set on it.
type Server struct {
	// Addr is the server's UDP address (host:port).
	Addr string

	mu  sync.Mutex
	a   map[string][]net.IP
	srv map[string][]SRV
}

// SRV is one SRV record: a target name and a port.
type SRV struct {
	Target string
	Port   uint16
}

// Start runs a server until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), a: map[string][]net.IP{}, srv: map[string][]SRV{}}
	started := make(chan struct{})
	d := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = d.ActivateAndServe() }()
	<-started
	tb.Cleanup(func() { _ = d.Shutdown() })
	return s
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// SetA makes name answer these IPv4 addresses (none: NXDOMAIN).
func (s *Server) SetA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.IP
	for _, ip := range ips {
		out = append(out, net.ParseIP(ip).To4())
	}
	s.a[fqdn(name)] = out
}

// SetSRV makes name answer these SRV records.
func (s *Server) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv[fqdn(name)] = recs
}

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	for _, q := range r.Question {
		name := strings.ToLower(q.Name)
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		_, knownA := s.a[name]
		_, knownSRV := s.srv[name]
		if !knownA && !knownSRV {
			m.Rcode = dns.RcodeNameError
			continue
		}
		switch q.Qtype {
		case dns.TypeA:
			for _, ip := range s.a[name] {
				h := hdr
				h.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: h, A: ip})
			}
		case dns.TypeSRV:
			for _, rec := range s.srv[name] {
				h := hdr
				h.Rrtype = dns.TypeSRV
				m.Answer = append(m.Answer, &dns.SRV{Hdr: h, Priority: 10, Weight: 10, Port: rec.Port, Target: fqdn(rec.Target)})
			}
		}
	}
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}
