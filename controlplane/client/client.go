// Package client is the Go client of ittybit's REST API, used by the CLI
// (ittybit tasks, --cloud) and by tests. It imports only the standard
// library, encoders and controlplane/api.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// DefaultURL is where ittybit dev listens.
const DefaultURL = "http://127.0.0.1:8080"

// Client calls one ittybit API. It is safe for concurrent use.
type Client struct {
	base  string
	key   string
	http  *http.Client
	retry int
	// silence is how long Follow waits for anything from the live feed.
	silence time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, transport).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how often a request answered 503 or 429 is retried
// (after Retry-After); the default is 5.
func WithRetries(n int) Option { return func(c *Client) { c.retry = n } }

// WithFeedSilence sets how long Follow waits for anything from the live
// feed (an event, or the comment the server sends every 15 s while none
// comes) before it takes the connection for dead and resumes on a new
// one; the default is 45 s.
func WithFeedSilence(d time.Duration) Option { return func(c *Client) { c.silence = d } }

// New returns a client of the API at baseURL with an API key.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), key: apiKey, http: &http.Client{Timeout: time.Minute}, retry: 5, silence: defaultFeedSilence}
	for _, o := range opts {
		o(c)
	}
	return c
}

// CreateOptions are the optional headers of a create.
type CreateOptions struct {
	// IdempotencyKey makes retries of the same create return the same task.
	IdempotencyKey string
}

// Create submits a task.
func (c *Client) Create(ctx context.Context, req api.CreateTaskRequest, opts CreateOptions) (*api.Task, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode task: %w", err)
	}
	// Retries (here on 503, or by the caller) must not create a second
	// task: without a key of the caller's, the create gets its own.
	key := opts.IdempotencyKey
	if key == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		key = "client-" + hex.EncodeToString(b[:])
	}
	hdr := http.Header{"Idempotency-Key": {key}}
	var t api.Task
	return &t, c.do(ctx, http.MethodPost, "/tasks", body, hdr, &t)
}

// Get returns a task.
func (c *Client) Get(ctx context.Context, id string) (*api.Task, error) {
	var t api.Task
	return &t, c.do(ctx, http.MethodGet, "/tasks/"+url.PathEscape(id), nil, nil, &t)
}

// Cancel cancels a task.
func (c *Client) Cancel(ctx context.Context, id string) (*api.Task, error) {
	var t api.Task
	return &t, c.do(ctx, http.MethodPost, "/tasks/"+url.PathEscape(id)+"/cancel", nil, nil, &t)
}

// ListOptions select a page of tasks; zero values take the API's defaults.
type ListOptions struct {
	Limit  int
	After  string
	Before string
	Order  string
	Status string
	Kind   string
}

// List returns a page of tasks.
func (c *Client) List(ctx context.Context, o ListOptions) (*api.TaskList, error) {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	for k, v := range map[string]string{"after": o.After, "before": o.Before, "order": o.Order, "status": o.Status, "kind": o.Kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/tasks"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l api.TaskList
	return &l, c.do(ctx, http.MethodGet, path, nil, nil, &l)
}

// Wait follows a task until it ends or ctx is done, calling progress
// (when not nil) each time the task changes, and returns the final task.
// It learns of changes from the live feed (GET /events/stream?task=ID) and
// reads the task when one comes; while a step runs it also reads the task
// every so often (every; 0 means 500 ms) for the step's progress, which no
// event carries. Against a server without the feed it polls.
func (c *Client) Wait(ctx context.Context, id string, every time.Duration, progress func(*api.Task)) (*api.Task, error) {
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	changed := make(chan struct{}, 1)
	feedDown := make(chan struct{})
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(feedDown)
		_ = c.Follow(fctx, EventOptions{TaskID: id}, func(api.Event) error {
			select {
			case changed <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	var last int64 = -1
	for {
		t, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if progress != nil && t.UpdatedAt != last {
			progress(t)
		}
		last = t.UpdatedAt
		if t.Status.Finished() {
			return t, nil
		}
		// Between events: the progress of a running step, or nothing.
		var tick <-chan time.Time
		switch {
		case t.Status == api.TaskProcessing && progress != nil:
			tick = time.After(every)
		case isClosed(feedDown):
			tick = time.After(every) // no feed: poll
		default:
			tick = time.After(30 * time.Second) // a safety net only
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-changed:
		case <-feedDown:
			feedDown = nil // polled from now on
		case <-tick:
		}
	}
}

// isClosed says whether ch is closed (nil: the feed already went, so
// yes).
func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// do sends a request and decodes the answer into out; an error answer
// becomes an *api.Error. 503 and 429 are retried after Retry-After.
func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr http.Header, out any) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, c.base+path, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read answer of %s %s: %w", method, path, err)
		}
		if resp.StatusCode < 300 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
			}
			return nil
		}
		var ae api.Error
		if json.Unmarshal(data, &ae) != nil || ae.Kind == "" {
			ae = api.Error{Kind: ittybit.ErrInternal, Message: fmt.Sprintf("%s %s answered %s: %s", method, path, resp.Status, bytes.TrimSpace(data))}
		}
		retryable := resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests
		if !retryable || attempt >= c.retry {
			return &ae
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			return errors.Join(&ae, ctx.Err())
		case <-time.After(wait):
		}
	}
}
