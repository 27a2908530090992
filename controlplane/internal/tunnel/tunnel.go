// Package tunnel dials TCP connections through an HTTP CONNECT proxy. A
// control-plane server started with --peer-proxy sends all its traffic to
// other servers (Raft, forwarded requests, joins) this way, so that the
// fault tests can cut chosen links between processes without root, network
// namespaces or firewall rules.
package tunnel

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DialFunc connects to addr; net.Dialer's DialContext is one.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Via returns a DialFunc that reaches addr through the HTTP CONNECT proxy
// at proxy (host:port).
func Via(proxy string) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, proxy)
		if err != nil {
			return nil, fmt.Errorf("dial proxy %s: %w", proxy, err)
		}
		if deadline, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(deadline)
		} else {
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		}
		if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr); err != nil {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: %w", proxy, err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: %w", proxy, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			conn.Close()
			return nil, fmt.Errorf("proxy %s refused %s: %s", proxy, addr, resp.Status)
		}
		_ = conn.SetDeadline(time.Time{})
		if br.Buffered() > 0 {
			// The proxy sent bytes of the tunnel with its answer.
			return &bufferedConn{Conn: conn, r: br}, nil
		}
		return conn, nil
	}
}

// bufferedConn reads what the handshake's reader buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
