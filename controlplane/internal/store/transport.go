package store

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// dialStream is Raft's stream layer over a TCP listener whose outgoing
// connections go through dial (a proxy in the fault tests) rather than
// straight to the peer.
type dialStream struct {
	net.Listener
	advertise net.Addr
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ raft.StreamLayer = (*dialStream)(nil)

func (s *dialStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dial(ctx, "tcp", string(addr))
}

func (s *dialStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

// newDialTransport is raft.NewTCPTransport with outgoing connections made
// by dial.
func newDialTransport(bind string, advertise net.Addr, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransport(&dialStream{Listener: ln, advertise: advertise, dial: dial}, 3, 10*time.Second, io.Discard), nil
}
