package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/ittybit-oss/ittybit/storage"
)

// Timeout is how long a receiver has to answer an attempt.
const Timeout = 15 * time.Second

// MaxAnswer is how much of an answer is read (and kept, as an excerpt).
const MaxAnswer = 20_000

// Resolver looks up a host's addresses; *net.Resolver is one, and tests
// inject others (a name that resolves to a private address, an answer
// that changes).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Sender delivers messages over HTTP to public addresses only. Its zero
// value is ready: the system resolver, plain TCP, a 15 s timeout.
type Sender struct {
	Resolver Resolver
	// AllowPrivate lets endpoints on loopback and private networks through
	// (--allow-private-inputs, ittybit dev).
	AllowPrivate bool
	// Timeout bounds an attempt (0: Timeout).
	Timeout time.Duration
	// Dial connects to an address already checked (nil: net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	once   sync.Once
	client *http.Client
}

// Attempt is what one attempt at a delivery came to.
type Attempt struct {
	Result     Result
	Status     int // 0 when no answer came
	TimedOut   bool
	RetryAfter time.Duration
	Latency    time.Duration
	// Error says why an attempt failed, for people; Answer is the start of
	// the receiver's answer.
	Error  string
	Answer string
}

// blockedError is a connection refused before it was made: the name
// resolved to an address that is not public.
type blockedError struct{ msg string }

func (e *blockedError) Error() string { return e.msg }

// Send posts body to rawURL with the headers h (see Header), and says
// what came of it. It never follows a redirect (a 3xx is a failure) and
// reads at most MaxAnswer bytes of the answer.
func (s *Sender) Send(ctx context.Context, rawURL string, h http.Header, body []byte) Attempt {
	s.once.Do(s.init)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Attempt{Result: Failed, Error: err.Error()}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "ittybit-webhooks/1")
	start := time.Now()
	resp, err := s.client.Do(req)
	a := Attempt{Latency: time.Since(start)}
	if err != nil {
		var be *blockedError
		var ne net.Error
		switch {
		case errors.As(err, &be):
			a.Result, a.Error = Blocked, be.msg
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
			a.Result, a.TimedOut, a.Error = Failed, true, fmt.Sprintf("no answer within %s", s.timeout())
		default:
			a.Result, a.Error = Failed, err.Error()
		}
		return a
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer)) // a short read still has its status
	a.Latency = time.Since(start)
	a.Status, a.Result, a.Answer = resp.StatusCode, Classify(resp.StatusCode), string(answer)
	if a.Result == Throttled {
		a.RetryAfter = RetryAfter(resp.Header, time.Now())
	}
	if a.Result != Delivered {
		a.Error = fmt.Sprintf("answered %s", resp.Status)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			a.Error += " (redirects are not followed)"
		}
	}
	return a
}

func (s *Sender) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return Timeout
}

func (s *Sender) init() {
	tr := &http.Transport{
		DialContext:           s.dial,
		Proxy:                 nil, // a proxy would connect where we did not check
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: s.timeout(),
	}
	s.client = &http.Client{
		Transport:     tr,
		Timeout:       s.timeout(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// dial resolves the host, refuses addresses that are not public, and
// connects to an allowed one by IP, so what was checked is what is
// reached, whatever the name resolves to next time.
func (s *Sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := s.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, ip := range ips {
		if why := storage.BlockedReason(ip); why != "" && !s.AllowPrivate {
			lastErr = &blockedError{fmt.Sprintf("%s resolves to %s, %s: webhooks go to public addresses only", host, ip.Unmap(), why)}
			continue
		}
		target := net.JoinHostPort(ip.Unmap().String(), port)
		var conn net.Conn
		if s.Dial != nil {
			conn, err = s.Dial(ctx, network, target)
		} else {
			conn, err = (&net.Dialer{Timeout: s.timeout()}).DialContext(ctx, network, target)
		}
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%s has no address", host)
	}
	return nil, lastErr
}

// resolve returns the addresses of host: itself when it is an address in
// any form a system resolver reads ("127.0.0.1.", "2130706433",
// "0x7f.1"), else what the resolver answers.
func (s *Sender) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, ok := storage.HostAddr(host); ok {
		return []netip.Addr{ip}, nil
	}
	r := s.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %v", host, err)
	}
	return ips, nil
}

// CheckURL refuses an endpoint URL a webhook may not be sent to, saying
// why: not http(s), credentials in it, a host that is not ASCII, or a host
// that is, or resolves to, an address that is not public (unless
// AllowPrivate). Every connection is checked again as it is made.
func (s *Sender) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q is not a URL: %v", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url %q: accepted: an http:// or https:// URL", raw)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("url %q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("url %q holds credentials; accepted: a URL without user or password (the signature authenticates the sender)", raw)
	case u.Fragment != "":
		return fmt.Errorf("url %q has a fragment (#…), which HTTP never sends", raw)
	}
	host := strings.ToLower(u.Hostname())
	if strings.IndexFunc(host, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
		return fmt.Errorf("url %q: write an internationalized host name in its ASCII (xn--) form", raw)
	}
	if s.AllowPrivate {
		return nil
	}
	if h := strings.TrimRight(host, "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("url %q: %s is a loopback name; webhooks go to public addresses only (a server allows others only with --allow-private-inputs)", raw, u.Hostname())
	}
	ips, err := s.resolve(ctx, host)
	if err != nil {
		return fmt.Errorf("url %q: %v", raw, err)
	}
	for _, ip := range ips {
		if why := storage.BlockedReason(ip); why != "" {
			what := u.Hostname() + " is"
			if ip.String() != strings.Trim(host, "[]") {
				what = fmt.Sprintf("%s resolves to %s,", u.Hostname(), ip.Unmap())
			}
			return fmt.Errorf("url %q: %s %s; webhooks go to public addresses only (a server allows others only with --allow-private-inputs)", raw, what, why)
		}
	}
	return nil
}
