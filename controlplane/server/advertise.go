package server

import (
	"errors"
	"fmt"
	"net"
)

// advertised returns the address other servers reach a listener bound at
// addr by: addr itself, unless its host is unspecified (0.0.0.0, ::, or
// none, as a container binds), which no peer can dial; then this host's
// first private IPv4 address (else its first global one), with addr's port.
// Set --raft-advertise and --http-advertise where that guess is wrong.
func advertised(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr, nil
	}
	ip, err := hostIP()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// hostIP is this host's first private IPv4 address on an interface that
// is up, or else its first global unicast one.
func hostIP() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var global net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil || !n.IP.IsGlobalUnicast() {
				continue
			}
			if n.IP.IsPrivate() {
				return n.IP.To4(), nil
			}
			if global == nil {
				global = n.IP.To4()
			}
		}
	}
	if global != nil {
		return global, nil
	}
	return nil, errors.New("this host has no IPv4 address other servers could reach")
}

// fillAdvertise sets the advertised addresses a server bound to every
// interface leaves unset.
func fillAdvertise(cfg *Config, httpBound string) error {
	if cfg.RaftAdvertise == "" {
		a, err := advertised(cfg.RaftAddr)
		if err != nil {
			return fmt.Errorf("raft address %s: %w: set --raft-advertise to the address other servers reach this one at", cfg.RaftAddr, err)
		}
		if a != cfg.RaftAddr {
			cfg.RaftAdvertise = a
		}
	}
	if cfg.HTTPAdvertise == "" {
		a, err := advertised(httpBound)
		if err != nil {
			return fmt.Errorf("http address %s: %w: set --http-advertise to the address other servers reach this one at", httpBound, err)
		}
		cfg.HTTPAdvertise = a
	}
	return nil
}
