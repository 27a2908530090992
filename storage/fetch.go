package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ittybit-oss/ittybit"
)

// Resolver looks up the addresses of a host; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// FetchConfig configures a Fetcher. The zero value is the safe default:
// public addresses only, 10 GiB, one hour, five redirects.
type FetchConfig struct {
	// AllowPrivate admits loopback, private, link-local and metadata
	// addresses. Only for local use and operators who ask for it.
	AllowPrivate bool
	// MaxBytes caps the size of a download; 0 means 10 GiB.
	MaxBytes int64
	// Timeout caps a whole download; 0 means one hour.
	Timeout time.Duration
	// IdleTimeout fails a download that receives nothing for this long; 0
	// means one minute.
	IdleTimeout time.Duration
	// MaxRedirects caps redirects followed; 0 means 5, negative means none.
	MaxRedirects int
	// Resolver and Dial replace DNS and TCP (tests record attempts instead
	// of connecting); nil means the system's.
	Resolver Resolver
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	// UserAgent is sent with each request.
	UserAgent string
}

// Fetcher downloads task inputs over HTTP(S). Every connection's address is
// checked when it is made, after DNS, so neither a name that resolves to a
// private address, nor DNS rebinding, nor a redirect reaches one.
type Fetcher struct {
	cfg    FetchConfig
	client *http.Client
}

// NewFetcher returns a Fetcher for cfg.
func NewFetcher(cfg FetchConfig) *Fetcher {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 10 << 30
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Minute
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = 5
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ittybit"
	}
	f := &Fetcher{cfg: cfg}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would connect on our behalf, past the checks
		DialContext:           f.dial,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: cfg.IdleTimeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
	}
	f.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if cfg.MaxRedirects < 0 || len(via) > cfg.MaxRedirects {
				return ittybit.Errorf(ittybit.ErrFetchFailed, "too many redirects (more than %d)", max(cfg.MaxRedirects, 0))
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return ittybit.Errorf(ittybit.ErrInputBlocked, "redirect to %s:// refused; only http and https are followed", req.URL.Scheme)
			}
			return nil
		},
	}
	return f
}

// dial resolves the host, refuses blocked addresses, and connects to an
// allowed address by IP, so what was checked is what is reached.
func (f *Fetcher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, ok := HostAddr(host); ok {
		ips = []netip.Addr{ip}
	} else {
		if ips, err = f.cfg.Resolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, ittybit.Errorf(ittybit.ErrFetchFailed, "resolve %s: %v", host, err)
		}
	}
	var lastErr error
	for _, ip := range ips {
		if why := BlockedReason(ip); why != "" && !f.cfg.AllowPrivate {
			lastErr = ittybit.Errorf(ittybit.ErrInputBlocked, "the input host %s resolves to %s, %s; inputs must be on the public internet", host, ip.Unmap(), why)
			continue
		}
		target := net.JoinHostPort(ip.Unmap().String(), port)
		var conn net.Conn
		if f.cfg.Dial != nil {
			conn, err = f.cfg.Dial(ctx, network, target)
		} else {
			d := net.Dialer{Timeout: 30 * time.Second, Control: f.control}
			conn, err = d.DialContext(ctx, network, target)
		}
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = ittybit.Errorf(ittybit.ErrFetchFailed, "no address for %s", host)
	}
	return nil, lastErr
}

// control checks the socket's address once more, just before connecting.
func (f *Fetcher) control(network, address string, _ syscall.RawConn) error {
	if f.cfg.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return ittybit.Errorf(ittybit.ErrInputBlocked, "unexpected address %s", address)
	}
	if why := BlockedReason(ap.Addr()); why != "" {
		return ittybit.Errorf(ittybit.ErrInputBlocked, "the input address %s is %s", ap.Addr(), why)
	}
	return nil
}

// Fetch downloads rawURL into w and returns the number of bytes written.
// Errors are *ittybit.Error of kind ErrInputBlocked, ErrInputTooLarge,
// ErrFetchFailed or ErrCancelled, and ErrInternal when w fails (a full
// disk).
func (f *Fetcher) Fetch(ctx context.Context, rawURL string, w io.Writer) (int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return 0, ittybit.Errorf(ittybit.ErrFetchFailed, "cannot fetch %q: only http and https URLs", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, ittybit.Errorf(ittybit.ErrFetchFailed, "request %s: %v", redact(u), err)
	}
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, f.fetchErr(ctx, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, ittybit.Errorf(ittybit.ErrFetchFailed, "%s answered %s", redact(u), resp.Status)
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return 0, ittybit.Errorf(ittybit.ErrInputTooLarge, "the input is %s, over the limit of %s", humanBytes(resp.ContentLength), humanBytes(f.cfg.MaxBytes))
	}
	body := &idleReader{r: resp.Body, idle: f.cfg.IdleTimeout, cancel: cancel}
	dst := &writeErrs{w: w}
	n, err := io.Copy(dst, io.LimitReader(body, f.cfg.MaxBytes+1))
	if n > f.cfg.MaxBytes {
		return n, ittybit.Errorf(ittybit.ErrInputTooLarge, "the input is over the limit of %s", humanBytes(f.cfg.MaxBytes))
	}
	if dst.err != nil {
		// This machine's fault (a full disk), not the origin's: another
		// node may well succeed.
		return n, ittybit.Errorf(ittybit.ErrInternal, "write the download: %v", dst.err)
	}
	if err != nil {
		if body.timedOut() {
			return n, ittybit.Errorf(ittybit.ErrFetchFailed, "%s sent nothing for %s", redact(u), f.cfg.IdleTimeout)
		}
		return n, f.fetchErr(ctx, u, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, ittybit.Errorf(ittybit.ErrFetchFailed, "%s ended after %d of %d bytes", redact(u), n, resp.ContentLength)
	}
	return n, nil
}

func (f *Fetcher) fetchErr(ctx context.Context, u *url.URL, err error) error {
	var e *ittybit.Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ittybit.Errorf(ittybit.ErrFetchFailed, "fetching %s took longer than %s", redact(u), f.cfg.Timeout)
	}
	if ctx.Err() != nil {
		return ittybit.Errorf(ittybit.ErrCancelled, "fetch cancelled")
	}
	return ittybit.Errorf(ittybit.ErrFetchFailed, "fetch %s: %v", redact(u), unwrapURLErr(err))
}

func unwrapURLErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact drops credentials and the query (which may hold signatures).
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}

// writeErrs remembers the error of the writer a download goes to, to tell
// a local failure from the origin's.
type writeErrs struct {
	w   io.Writer
	err error
}

func (we *writeErrs) Write(p []byte) (int, error) {
	n, err := we.w.Write(p)
	if err != nil && we.err == nil {
		we.err = err
	}
	return n, err
}

// idleReader fails a body that stalls: each Read must make progress
// within idle, or the request's context is cancelled.
type idleReader struct {
	r      io.Reader
	idle   time.Duration
	cancel context.CancelFunc
	timer  *time.Timer
	fired  chan struct{}
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if ir.timer == nil {
		ir.fired = make(chan struct{})
		ir.timer = time.AfterFunc(ir.idle, func() { close(ir.fired); ir.cancel() })
	}
	n, err := ir.r.Read(p)
	if n > 0 && !ir.timedOut() {
		ir.timer.Reset(ir.idle)
	}
	if err != nil {
		ir.timer.Stop()
	}
	return n, err
}

func (ir *idleReader) timedOut() bool {
	if ir.fired == nil {
		return false
	}
	select {
	case <-ir.fired:
		return true
	default:
		return false
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// IsHTTP reports whether s is an http or https URL.
func IsHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
