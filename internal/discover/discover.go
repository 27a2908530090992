// Package discover turns the addresses servers and agents are given
// (--join, --server) into the base URLs of control-plane servers. Besides
// plain URLs it takes DNS names, so that a cluster finds itself where
// fleets run: a Kubernetes headless service, a Consul or Nomad service.
//
//	http://host:port     one server (https too)
//	dns://NAME:PORT      every A and AAAA address of NAME, on PORT
//	dns+srv://NAME       every SRV record of NAME: its target's addresses, on its port
//
// Names are looked up again on every Resolve: pods come and go.
package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Accepted names the forms a target may take, for error messages.
const Accepted = "http://HOST:PORT, https://HOST:PORT, dns://NAME:PORT (its A/AAAA records) or dns+srv://NAME (its SRV records)"

// Target is one parsed address.
type Target struct {
	// Raw is the address as given.
	Raw string
	// Kind is "url", "dns" or "srv".
	Kind string
	// URL is the base URL of a "url" target.
	URL string
	// Name and Port are what a "dns" target looks up; Name alone a "srv".
	Name string
	Port string
}

// Parse checks one address and says what is wrong with it.
func Parse(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return Target{}, fmt.Errorf("%q is not a server address: accepted: %s", raw, Accepted)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Port() == "" {
			return Target{}, fmt.Errorf("%q names no port: accepted: %s", raw, Accepted)
		}
		return Target{Raw: raw, Kind: "url", URL: u.Scheme + "://" + u.Host}, nil
	case "dns":
		host, port := u.Hostname(), u.Port()
		if host == "" || port == "" {
			return Target{}, fmt.Errorf("%q: dns:// takes NAME:PORT, such as dns://ittybit-server-internal:8080", raw)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return Target{}, fmt.Errorf("%q: port %q is not a port number (1-65535)", raw, port)
		}
		return Target{Raw: raw, Kind: "dns", Name: host, Port: port}, nil
	case "dns+srv":
		if u.Port() != "" {
			return Target{}, fmt.Errorf("%q: dns+srv:// takes a name only (the SRV records give the ports), such as dns+srv://_http._tcp.ittybit-server-internal", raw)
		}
		return Target{Raw: raw, Kind: "srv", Name: u.Hostname()}, nil
	}
	return Target{}, fmt.Errorf("%q: scheme %q is not accepted: accepted: %s", raw, u.Scheme, Accepted)
}

// ParseAll parses every address; the first bad one is the error.
func ParseAll(raws []string) ([]Target, error) {
	out := make([]Target, 0, len(raws))
	for _, r := range raws {
		t, err := Parse(r)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Dynamic reports whether any target is a DNS name, whose answer may change.
func Dynamic(ts []Target) bool {
	return slices.ContainsFunc(ts, func(t Target) bool { return t.Kind != "url" })
}

// Resolver looks names up.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// NewResolver returns the system's resolver, or, with server
// ("host:port"), one that asks that DNS server (Consul's DNS on
// 127.0.0.1:8600, say) and nothing else.
func NewResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// Result is what one Resolve found.
type Result struct {
	// URLs are the base URLs found, in the order of the targets, without
	// repeats.
	URLs []string
	// Failed maps each target that found nothing to why.
	Failed map[string]error
}

// Resolve looks every target up. Targets that find nothing are in Failed;
// the others' URLs are returned, each once.
func Resolve(ctx context.Context, r Resolver, ts []Target) Result {
	res := Result{Failed: map[string]error{}}
	add := func(u string) {
		if !slices.Contains(res.URLs, u) {
			res.URLs = append(res.URLs, u)
		}
	}
	for _, t := range ts {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		switch t.Kind {
		case "url":
			add(t.URL)
		case "dns":
			var addrs []string
			if addrs, err = r.LookupHost(lctx, t.Name); err == nil {
				slices.Sort(addrs)
				for _, a := range addrs {
					add("http://" + net.JoinHostPort(a, t.Port))
				}
				if len(addrs) == 0 {
					err = errors.New("no addresses")
				}
			}
		case "srv":
			var srvs []*net.SRV
			if _, srvs, err = r.LookupSRV(lctx, "", "", t.Name); err == nil {
				slices.SortFunc(srvs, func(a, b *net.SRV) int { return strings.Compare(a.Target, b.Target) })
				// Each target is looked up here, with the same resolver:
				// a name that only the --dns-server knows (Consul's) works.
				for _, s := range srvs {
					port := strconv.Itoa(int(s.Port))
					addrs, herr := r.LookupHost(lctx, strings.TrimSuffix(s.Target, "."))
					if herr != nil {
						err = fmt.Errorf("SRV target %s: %w", s.Target, herr)
						continue
					}
					slices.Sort(addrs)
					for _, a := range addrs {
						add("http://" + net.JoinHostPort(a, port))
					}
				}
				if len(srvs) == 0 {
					err = errors.New("no SRV records")
				}
			}
		}
		cancel()
		if err != nil {
			res.Failed[t.Raw] = err
		}
	}
	return res
}
