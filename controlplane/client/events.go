package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// EventOptions select events: after a cursor (an event id), of a type, of
// a task. Limit is the page size of Events (1–100; 0: the server's 20).
type EventOptions struct {
	After  string
	Limit  int
	Type   api.EventType
	TaskID string
}

func (o EventOptions) query(list bool) string {
	v := url.Values{}
	if o.After != "" {
		v.Set("after", o.After)
	}
	if list && o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Type != "" {
		v.Set("type", string(o.Type))
	}
	if o.TaskID != "" {
		v.Set("task", o.TaskID)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// Events lists events, oldest first (GET /events). A cursor older than
// the server's retention is the error kind cursor_expired.
func (c *Client) Events(ctx context.Context, o EventOptions) (*api.List[api.Event], error) {
	var l api.List[api.Event]
	if err := c.do(ctx, http.MethodGet, "/events"+o.query(true), nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// defaultFeedSilence is three of the server's keep-alive comments.
const defaultFeedSilence = 45 * time.Second

// Follow reads the live feed (GET /events/stream) from o.After and calls
// fn with each event, in order, until ctx ends or fn returns an error
// (which Follow returns). A dropped connection is resumed with the last
// event id seen, so no event is lost or seen twice, and so is one that
// has gone silent (WithFeedSilence: a server stopped, or a path that
// drops packets without a word, which TCP takes minutes to notice); an
// error answer (a bad query, an expired cursor, a wrong key) ends it.
func (c *Client) Follow(ctx context.Context, o EventOptions, fn func(api.Event) error) error {
	stream := &http.Client{Transport: c.http.Transport} // no timeout: a feed lasts
	backoff := 100 * time.Millisecond
	for {
		resumed, err := c.followOnce(ctx, stream, &o, fn)
		if err != nil {
			return err
		}
		if resumed {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// followOnce reads the feed over one connection until it ends, is
// silent for c.silence, or ctx ends. It reports whether the server
// answered with the feed, and returns fn's error or an error answer that
// retrying cannot mend.
func (c *Client) followOnce(ctx context.Context, stream *http.Client, o *EventOptions, fn func(api.Event) error) (bool, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	silent := time.AfterFunc(c.silence, cancel) // the connection, not ctx
	defer silent.Stop()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, c.base+"/events/stream"+o.query(false), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if o.After != "" {
		req.Header.Set("Last-Event-ID", o.After)
	}
	resp, err := stream.Do(req)
	if err != nil {
		return false, nil // unreachable, or silent: again
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae api.Error
		if json.Unmarshal(data, &ae) != nil || ae.Kind == "" {
			ae = api.Error{Kind: ittybit.ErrInternal, Message: fmt.Sprintf("GET /events/stream answered %s: %s", resp.Status, bytes.TrimSpace(data))}
		}
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			return false, &ae
		}
		return false, nil
	}
	body := &heard{r: resp.Body, timer: silent, silence: c.silence}
	return true, readFeed(body, func(e api.Event) error {
		o.After = e.ID
		silent.Stop() // fn's time is not the server's silence
		defer silent.Reset(c.silence)
		return fn(e)
	})
}

// heard restarts a timer whenever bytes come.
type heard struct {
	r       io.Reader
	timer   *time.Timer
	silence time.Duration
}

func (h *heard) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.timer.Reset(h.silence)
	}
	return n, err
}

// readFeed parses Server-Sent Events from r and calls fn with each event's
// data; it returns fn's error, or nil when the stream ends.
func readFeed(r io.Reader, fn func(api.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				var e api.Event
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("decode an event of the feed: %w", err)
				}
				if e.ID != "" {
					if err := fn(e); err != nil {
						return err
					}
				}
			}
			data = data[:0]
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		}
	}
	return nil
}

// CreateWebhook creates a webhook endpoint; the answer holds its secret,
// shown only this once.
func (c *Client) CreateWebhook(ctx context.Context, req api.WebhookRequest) (*api.Webhook, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var w api.Webhook
	if err := c.do(ctx, http.MethodPost, "/webhooks", body, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Webhooks lists the webhook endpoints.
func (c *Client) Webhooks(ctx context.Context) (*api.List[api.Webhook], error) {
	var l api.List[api.Webhook]
	if err := c.do(ctx, http.MethodGet, "/webhooks", nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// RotateWebhook makes a new secret for an endpoint; the answer holds it,
// and the old one keeps signing beside it for 24 h.
func (c *Client) RotateWebhook(ctx context.Context, id string) (*api.Webhook, error) {
	var w api.Webhook
	if err := c.do(ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/rotate", nil, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Deliveries lists an endpoint's deliveries, newest first (limit 0: the
// server's 20).
func (c *Client) Deliveries(ctx context.Context, id string, limit int) (*api.List[api.Delivery], error) {
	path := "/webhooks/" + url.PathEscape(id) + "/deliveries"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var l api.List[api.Delivery]
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// TestWebhook sends a test message (type webhook.test) to an endpoint and
// returns its delivery.
func (c *Client) TestWebhook(ctx context.Context, id string) (*api.Delivery, error) {
	var d api.Delivery
	if err := c.do(ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/test", nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
