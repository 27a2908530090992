package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
)

// Headers between servers.
const (
	headerForwardedBy = "X-Ittybit-Forwarded-By"
	// headerRequestID carries the id the first server gave a request, so
	// that however often it is retried or forwarded, it creates one task.
	headerRequestID = "X-Ittybit-Request-Id"
)

// errElsewhere tells leader() that this node stopped leading while handling
// the request: run it again where the leader is now.
var errElsewhere = errors.New("leadership moved")

// current confirms, before a read, that this server still leads (a quorum
// answers its heartbeats), so that every read sees every write answered
// before it, through any server: a leader cut off from the others, or
// stopped and resumed, believes it leads until it hears otherwise, and
// would answer from a state a newer leader has moved past. One that no
// longer leads hands the read back to leader(), which finds the one that
// does.
func (a *API) current() error {
	if err := a.cfg.Store.VerifyLeader(); err != nil {
		return errElsewhere
	}
	return nil
}

// forwarder sends requests on to the leader.
type forwarder struct {
	store  Store
	log    *slog.Logger
	client *http.Client
}

func newForwarder(s Store, dial func(ctx context.Context, network, addr string) (net.Conn, error), log *slog.Logger) *forwarder {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return dial(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     60 * time.Second,
	}
	return &forwarder{store: s, log: log, client: &http.Client{Transport: tr}}
}

// errForward tells leader() that a follower's own handling of a request
// (its away handler) cannot serve it: forward the request whole.
var errForward = errors.New("forward the request whole")

// leader runs h on the leader. On a follower it forwards the request to the
// leader and relays the answer; while there is no leader, or when
// leadership moves mid-request, it waits and tries again until the forward
// timeout, then answers 503.
func (a *API) leader(h handlerFunc) http.Handler { return a.leaderOr(h, nil) }

// leaderOr is leader with away, when not nil, run on a follower in place of
// forwarding the request whole: it answers the request itself (POST /tasks
// checks the request and sends it on in a batch), or returns errForward to
// have it forwarded after all, or errElsewhere to try again once a leader
// is found.
func (a *API) leaderOr(h, away handlerFunc) http.Handler {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(w, r, a.cfg.MaxBodyBytes)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return ittybit.Errorf(ittybit.ErrPayloadTooLarge, "the request body is over the limit of %d bytes", a.cfg.MaxBodyBytes)
			}
			return a.bodyReadError(err)
		}
		if r.Header.Get(headerRequestID) == "" || r.Header.Get(headerForwardedBy) == "" {
			r.Header.Set(headerRequestID, newRequestID())
		}
		// The request has ForwardTimeout to find a leader. Its context
		// with that deadline is made only for a request forwarded whole:
		// most are answered at the first try, and a context with a timer
		// for each was 3 % of a follower's CPU under load.
		deadline := time.Now().Add(a.cfg.ForwardTimeout)
		wait := 25 * time.Millisecond
		held := &heldBody{b: body}
		for {
			held.Reset(body)
			r.Body = held
			switch {
			case a.cfg.Store.LeaderReady():
				err := h(w, r)
				if !errors.Is(err, errElsewhere) {
					return err
				}
			case a.cfg.Store.IsLeader():
				// Elected, still applying earlier entries: shortly ready.
			case r.Header.Get(headerForwardedBy) != "":
				// Sent here as the leader, but it is not: let the sender,
				// who knows the request, find the leader again.
				return ittybit.Errorf(ittybit.ErrUnavailable, "this server is no longer the leader; retry")
			default:
				if _, addr, ok := a.cfg.Store.Leader(); ok && addr != "" {
					if away != nil {
						err := away(w, r)
						if errors.Is(err, errElsewhere) {
							break
						}
						if !errors.Is(err, errForward) {
							return err
						}
					}
					ctx, cancel := context.WithDeadline(r.Context(), deadline)
					done, err := a.proxy.forward(ctx, w, r, addr, body)
					cancel()
					if done {
						return err
					}
					a.log.Debug("forward to leader failed; retrying", "leader", addr, "err", err)
				}
			}
			if left := time.Until(deadline); left > 0 {
				t := time.NewTimer(min(wait, left))
				select {
				case <-r.Context().Done():
					t.Stop()
				case <-t.C:
				}
			}
			if r.Context().Err() != nil {
				return r.Context().Err()
			}
			if time.Until(deadline) <= 0 {
				return ittybit.Errorf(ittybit.ErrUnavailable, "no leader is available to take the request (an election may be in progress); retry")
			}
			wait = min(2*wait, 400*time.Millisecond)
		}
	})
}

// forward sends r to the leader at addr. It reports done when the answer
// was relayed to w; otherwise the leader could not be reached or was no
// longer the leader, and the caller should try again.
func (f *forwarder) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, addr string, body []byte) (bool, error) {
	u := *r.URL
	u.Scheme, u.Host = "http", addr
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for _, h := range []string{"Authorization", "Cookie", CSRFHeader, "Origin", "Referer", "Content-Type", "Idempotency-Key", "Accept", headerRequestID} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(headerForwardedBy, f.store.NodeID())
	if r.Header.Get("X-Forwarded-Host") == "" {
		// The client's view of the host, for URLs the leader writes back.
		req.Header.Set("X-Forwarded-Host", r.Host)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		_, _ = io.Copy(io.Discard, resp.Body)
		return false, errors.New("leader answered 503")
	}
	for _, h := range []string{"Content-Type", "Location", "Retry-After", "Allow"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, resp.Body)
	return true, err
}

// readBody reads a request's body, refusing one over limit bytes
// (*http.MaxBytesError). A body that says its length is read into a
// buffer of that length: io.ReadAll grows its buffer several times over
// for a follower's batch of creates.
//
// maxPresized bounds that buffer: a larger body grows its buffer as it
// arrives, so that headers promising a large body and nothing after them
// do not make the server set aside the whole of it.
const maxPresized = 256 << 10

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n > 0 && n <= min(limit, maxPresized) {
		b := make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, err
		}
		// Past its end and closed, the body leaves the server nothing to
		// drain once the handler returns (io.CopyN, and its allocations,
		// on every request).
		if k, err := r.Body.Read(b[:0]); k == 0 && err == io.EOF {
			_ = r.Body.Close()
		}
		return b, nil
	}
	return io.ReadAll(body)
}

// heldBody is a request body read whole (leaderOr reads it once, to try
// the request again or forward it): a reader over its bytes, which the
// handlers take through bodyOf rather than read a copy of.
type heldBody struct {
	bytes.Reader
	b []byte
}

func (*heldBody) Close() error { return nil }

// bodyOf returns the body of r: the bytes of a held body, or what r.Body
// reads, which it then holds in their place.
func bodyOf(r *http.Request) ([]byte, error) {
	if h, ok := r.Body.(*heldBody); ok {
		return h.b, nil
	}
	b, err := io.ReadAll(r.Body)
	h := &heldBody{b: b}
	h.Reset(b)
	r.Body = h
	return b, err
}

// elsewhere turns the store's "not the leader" errors into errElsewhere.
func elsewhere(err error) error {
	if errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrLeadershipLost) {
		return errElsewhere
	}
	return err
}

// newRequestID returns 32 hex digits: the time in milliseconds (6 bytes),
// then 10 random bytes. Time first keeps the ids of a moment together in
// the replicated tree of request keys, so a batch's inserts land in the
// same few nodes.
func newRequestID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
