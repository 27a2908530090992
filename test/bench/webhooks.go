package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
)

// webhookSink is a receiver that answers 204 and notes when each event
// arrived (the first time), by event id.
type webhookSink struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	created map[string]int64 // the event's created_at, epoch ms
	total   int
	sample  []byte // a body, for the bare sender
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	var e struct {
		ID        string `json:"id"`
		CreatedAt int64  `json:"created_at"`
	}
	_ = json.Unmarshal(body, &e)
	s.mu.Lock()
	s.total++
	if s.sample == nil {
		s.sample = body
	}
	if _, ok := s.arrived[e.ID]; !ok {
		s.arrived[e.ID], s.created[e.ID] = now, e.CreatedAt
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *webhookSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// benchWebhooks measures the webhook outbox on a three-server cluster:
// the time from an event's commit (its created_at, stamped by the leader)
// to the receiver's 2xx, one event at a time on an idle cluster; and the
// deliveries per second to 10 endpoints that each want every event.
func benchWebhooks(ctx context.Context, e *env, c config, rep *report) error {
	nodes, err := startCluster(ctx, e, "webhooks", "--allow-private-inputs", "--rate-limit", "0", "--pprof", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopAll(nodes)
	users := client.New(nodes[1].url, apiKey)
	listen := func() (*webhookSink, string, func(), error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", nil, err
		}
		sink := &webhookSink{arrived: map[string]time.Time{}, created: map[string]int64{}}
		srv := &http.Server{Handler: sink}
		go func() { _ = srv.Serve(ln) }()
		return sink, "http://" + ln.Addr().String() + "/hook", func() { _ = srv.Close() }, nil
	}
	create := func(i int) error {
		_, err := users.Create(ctx, api.CreateTaskRequest{Kind: "image", Input: "https://example.com/" + strconv.Itoa(i) + ".jpg"}, client.CreateOptions{})
		return err
	}

	// Latency: one endpoint, task.created events one at a time.
	sink, url, stop, err := listen()
	if err != nil {
		return err
	}
	defer stop() // it stays registered: it must keep answering
	if _, err := users.CreateWebhook(ctx, api.WebhookRequest{URL: &url, Events: []string{"task.created"}}); err != nil {
		return err
	}
	n := 200
	var lat []float64
	for i := range n {
		before := sink.count()
		if err := create(i); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for sink.count() == before && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(5 * time.Millisecond) // idle between events
	}
	sink.mu.Lock()
	for id, at := range sink.arrived {
		lat = append(lat, float64(at.UnixMilli()-sink.created[id]))
	}
	sink.mu.Unlock()
	if len(lat) < n {
		return fmt.Errorf("%d of %d events reached the receiver", len(lat), n)
	}
	p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
	fmt.Fprintf(os.Stderr, "   commit → 2xx: p50 %.1f ms, p99 %.1f ms over %d events\n", p50, p99, n)

	// Throughput: 10 endpoints, every event to each.
	var sinks []*webhookSink
	var urls []string
	for range 10 {
		s, u, stop, err := listen()
		if err != nil {
			return err
		}
		defer stop()
		if _, err := users.CreateWebhook(ctx, api.WebhookRequest{URL: &u, Events: []string{"*"}}); err != nil {
			return err
		}
		sinks, urls = append(sinks, s), append(urls, u)
	}
	const burst = 500
	profile := make(chan string, 1)
	go func() { profile <- profileTop(ctx, e, nodes[0], 2*time.Second, "webhooks.pprof") }()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < burst; i += 16 {
				if err := create(n + i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	want := burst * len(sinks) // one task.created per task, to each endpoint
	deadline := time.Now().Add(5 * time.Minute)
	total := 0
	for time.Now().Before(deadline) {
		total = 0
		for _, s := range sinks {
			total += s.count()
		}
		if total >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	if total < want {
		return fmt.Errorf("%d of %d deliveries in 5 min", total, want)
	}
	rate := float64(total) / took.Seconds()
	fmt.Fprintf(os.Stderr, "   %d deliveries to 10 endpoints in %.2f s: %.0f/s\n", total, took.Seconds(), rate)

	// The anchor: the same number of signed POSTs of an event's body to
	// the same receivers, 32 at a time, from one process with nothing to
	// record.
	sink.mu.Lock()
	body := sink.sample
	sink.mu.Unlock()
	bareTook, err := barePosts(ctx, urls, body, want, 32)
	if err != nil {
		return err
	}
	bare := float64(want) / bareTook.Seconds()
	top := <-profile
	fmt.Fprintf(os.Stderr, "   bare signed POSTs: %d in %.2f s: %.0f/s\n", want, bareTook.Seconds(), bare)
	sec := &section{
		title: "8. Webhooks",
		intro: "Three `ittybit server` processes on this machine, receivers on loopback answering 204 at once. **Latency**: one endpoint that wants `task.created`; " +
			fmt.Sprintf("%d tasks created one at a time, each event timed from its `created_at` (the leader's clock when it stamps the write, before Raft commits it) ", n) +
			"to the receiver's reading of the request (the 2xx follows at once). Every event takes the same path (commit → outbox → POST), `task.completed` included; tasks that are only created need no agent. " +
			fmt.Sprintf("**Throughput**: 10 endpoints that want every event; %d tasks created by 16 clients; deliveries per second from the first create to the last 2xx "+
				"(each delivery is an HTTP POST and a replicated write of its result); the anchor is the same number of POSTs, signed the same way, 32 at a time, by a bare loop in the bench that records nothing.", burst),
		header: []string{"what", "value"},
		rows: [][]string{
			{"commit → 2xx, p50", fmt.Sprintf("%.1f ms", p50)},
			{"commit → 2xx, p99", fmt.Sprintf("%.1f ms", p99)},
			{"deliveries to 10 endpoints", fmt.Sprintf("%d in %.2f s: %.0f/s", total, took.Seconds(), rate)},
			{"bare signed POSTs to the same receivers (anchor)", fmt.Sprintf("%d in %.2f s: %.0f/s", want, bareTook.Seconds(), bare)},
			{"deliveries / bare POSTs", fmt.Sprintf("%.2f", rate/bare)},
		},
		target: "commit → 2xx p99 ≤ 50 ms on an idle cluster",
		met:    verdict(p99 <= 50),
	}
	sec.notes = append(sec.notes, "The leader's CPU profile over the first 2 s of the throughput run (`go tool pprof -top`):\n\n```\n"+top+"```")
	rep.add(sec)
	return nil
}

// barePosts posts body, signed as a delivery is, n times round-robin to
// the sinks' URLs, with workers at a time, and returns how long it took.
func barePosts(ctx context.Context, sinks []string, body []byte, n, workers int) (time.Duration, error) {
	key := make([]byte, 32)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 15 * time.Second}
	next := make(chan int)
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		first = cmp.Or(first, err)
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id, ts := fmt.Sprintf("evt_%016x", i), strconv.FormatInt(time.Now().Unix(), 10)
				mac := hmac.New(sha256.New, key)
				mac.Write([]byte(id + "." + ts + "."))
				mac.Write(body)
				req, err := http.NewRequestWithContext(ctx, "POST", sinks[i%len(sinks)], bytes.NewReader(body))
				if err != nil {
					fail(err)
					continue
				}
				req.Header.Set("content-type", "application/json")
				req.Header.Set("webhook-id", id)
				req.Header.Set("webhook-timestamp", ts)
				req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(start), first
}
