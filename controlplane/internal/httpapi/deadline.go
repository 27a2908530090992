package httpapi

import (
	"errors"
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
