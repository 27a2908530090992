package fleetsim

import (
	"errors"
	"io"
	"net/http"
)

// Loss says what becomes of one request on a lossy link.
type Loss int

// What a lossy link does with a request.
const (
	// Deliver: the request and its answer go through.
	Deliver Loss = iota
	// LoseRequest: the request never reaches the server.
	LoseRequest
	// LoseAnswer: the server handles the request, and its answer is lost
	// on the way back: the caller cannot tell whether it was done.
	LoseAnswer
)

// ErrLost is the error a lost request or answer gives its caller.
var ErrLost = errors.New("fleetsim: lost on the way")

// Lossy is an http.RoundTripper that loses requests or answers, as Lose
// decides for each request.
type Lossy struct {
	Base http.RoundTripper
	Lose func(*http.Request) Loss
}

// RoundTrip sends req through Base unless it is lost.
func (l *Lossy) RoundTrip(req *http.Request) (*http.Response, error) {
	switch l.Lose(req) {
	case LoseRequest:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, ErrLost
	case LoseAnswer:
		resp, err := l.Base.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return nil, ErrLost
	}
	return l.Base.RoundTrip(req)
}
