package httpapi

import (
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/ittybit-oss/ittybit"
)

// Go's HTTP server bounds a request's headers (ReadHeaderTimeout) but, by
// default, not its body: a client that sent its headers and then
// stalled, or sent a byte a minute, held its connection, a goroutine and
// the body's buffer for as long as it liked, and so did one whose request
// a handler refused without reading the body (404, 405, 401), which the
// server then waits to drain. The server's ReadTimeout bounds the whole
// request, body included; the server lifts that deadline once the body
// has been read to its end (and at once for a request without one), so
// a handler may then take as long as it needs (an agent's long-poll, the
// live feed, a create waiting for a leader).
const (
	readHeaderTimeout = 10 * time.Second
	// defaultReadTimeout: the API's bodies are small JSON documents
	// (1 MiB at most): 30 s is 35 KB/s for the largest.
	defaultReadTimeout = 30 * time.Second
)

// bodyReadError is the API's error for a body that could not be read:
// request_timeout for one that did not arrive within the read timeout,
// else invalid_json.
func (a *API) bodyReadError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ittybit.Errorf(ittybit.ErrRequestTimeout, "the request did not arrive within %s; send the whole body at once", a.cfg.ReadTimeout)
	}
	return ittybit.Errorf(ittybit.ErrInvalidJSON, "could not read the request body: %v", err)
}

// A response is bounded by how long its client takes nothing of it, not
// by how long it takes in all: a page of tasks on a slow link, a large
// download and the live feed may all run long while the client reads.
// The server's WriteTimeout would bound the whole exchange, handler
// included (an agent's long-poll, a create waiting for a leader), so each
// response sets its connection's write deadline itself, WriteStall ahead,
// as it writes: in pieces of at most writeChunk (sendChunk for a file
// going out through sendfile), and again when the handler returns, for
// what net/http writes then; net/http clears it once the answer is out.
// A client that stops reading (a stalled or vanished peer; one that sends
// requests without reading the answers, until the sockets' buffers are
// full) has its connection closed after WriteStall, rather than hold it,
// a goroutine and up to a few MiB of kernel buffers for good. The least a
// client must take is writeChunk each 7/8 of WriteStall (1.2 KB/s by
// default), and sendChunk of a file (5 KB/s: a file goes out in larger
// pieces, each a call of sendfile, and a slow link still passes).
const (
	defaultWriteStall = time.Minute
	writeChunk        = 64 << 10
	sendChunk         = 256 << 10
)

// arm sets the connection's write deadline to WriteStall from now, unless
// it was set less than an eighth of that ago (one timer update an
// answer, not one a write). A writer without deadlines (a test's
// recorder) goes without.
func (s *statusWriter) arm() {
	if s.stall <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(s.armed) < s.stall/8 {
		return
	}
	s.armed = now
	_ = http.NewResponseController(s.ResponseWriter).SetWriteDeadline(now.Add(s.stall))
}
