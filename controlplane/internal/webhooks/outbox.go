package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Store is what the outbox needs of the replicated store: the state, and
// writing webhook ops (on the leader).
type Store interface {
	State() *state.Store
	WebhookOps(ctx context.Context, ops []state.WebhookOp) ([]state.WebhookResult, error)
}

// Outbox delivers the replicated outbox, on the leader: every pending
// delivery that is due, at most PerEndpoint at a time to one endpoint (so
// one slow endpoint never delays another's) and Workers in all, each
// attempt recorded in the log with when the next is due. A new leader
// resumes whatever is pending, with the same message ids: delivery is at
// least once.
type Outbox struct {
	Store  Store
	Sender *Sender
	// Render is an event's JSON, the body of its deliveries (the same as
	// GET /events shows, under 20 kB).
	Render func(*state.Event) []byte
	// Delays is the retry schedule (nil: Schedule), and Throttle the least
	// delay after a throttling answer or a timeout (0: a minute); tests
	// shorten both.
	Delays   []time.Duration
	Throttle time.Duration
	// PerEndpoint and Workers bound concurrent attempts (0: 4 and 32).
	PerEndpoint, Workers int
	Metrics              *Metrics
	Logger               *slog.Logger
	// Now and Jitter are the clock and the draw in [-1, 1] that spreads
	// retries (nil: time.Now and math/rand).
	Now    func() time.Time
	Jitter func() float64
}

// Metrics are the outbox's Prometheus metrics.
type Metrics struct {
	Deliveries *prometheus.CounterVec // by result
	Latency    prometheus.Histogram   // event committed → 2xx
	Depth      prometheus.Gauge
	Disabled   prometheus.Gauge
}

// NewMetrics registers the outbox's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ittybit_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by result: delivered, failed, throttled, gone, blocked.",
		}, []string{"result"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ittybit_webhook_delivery_latency_seconds",
			Help:    "From an event's commit to the receiver's 2xx, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300, 3600, 36000},
		}),
		Depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ittybit_webhook_outbox_depth",
			Help: "Webhook deliveries pending (due now or waiting for a retry), on the leader.",
		}),
		Disabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ittybit_webhook_endpoints_disabled",
			Help: "Webhook endpoints disabled (410 Gone, five days of failures, or by hand), on the leader.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Deliveries, m.Latency, m.Depth, m.Disabled)
	}
	for _, r := range []Result{Delivered, Failed, Throttled, Gone, Blocked} {
		m.Deliveries.WithLabelValues(r.String())
	}
	return m
}

func (o *Outbox) init() {
	if o.Delays == nil {
		o.Delays = Schedule
	}
	if o.Throttle <= 0 {
		o.Throttle = minThrottle
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 4
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = func() float64 { return 2*rand.Float64() - 1 }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sender == nil {
		o.Sender = &Sender{}
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// outboxTick is how often the outbox looks for retries that fell due;
// new events wake it at once.
const outboxTick = 200 * time.Millisecond

// Run delivers until ctx ends (leadership lost, or the server stops),
// then waits for the attempts under way.
func (o *Outbox) Run(ctx context.Context) {
	o.init()
	st := o.Store.State()
	// A delivery is inflight from its start until its attempt is
	// recorded (so it is not made twice, and a later event of its task
	// waits for it); it holds a place (posting, perEndpoint) only while
	// it is being posted, so that the next posts go out while the log
	// writes results, many to an entry.
	type news struct {
		id, endpoint string
		recorded     bool // else posted
	}
	results := make(chan news)
	inflight := map[string]bool{}
	perEndpoint := map[string]int{}
	posting := 0
	var wg sync.WaitGroup
	defer wg.Wait()
	records := make(chan record)
	wg.Go(func() { o.recordLoop(ctx, records) })
	tick := time.NewTicker(outboxTick)
	defer tick.Stop()
	gauges := func() {
		o.Metrics.Depth.Set(float64(st.PendingDeliveries()))
		disabled := 0
		for _, e := range st.Endpoints() {
			if e.Disabled != "" {
				disabled++
			}
		}
		o.Metrics.Disabled.Set(float64(disabled))
	}
	gauges()
	busy := func(id string) bool { return inflight[id] }
	turn := 0 // which endpoint is served first, in turn
	for {
		wake := st.EventsChanged()
		now := o.Now().UnixMilli()
		eps := st.Endpoints()
		turn++
		for i := range eps {
			ep := eps[(turn+i)%len(eps)]
			free := min(o.PerEndpoint-perEndpoint[ep.ID], o.Workers-posting, maxRecordBatch-len(inflight))
			if free <= 0 {
				continue
			}
			for _, d := range st.DueDeliveries(ep.ID, now, free, busy) {
				inflight[d.ID] = true
				perEndpoint[d.EndpointID]++
				posting++
				tell := func(recorded bool) {
					select {
					case results <- news{d.ID, d.EndpointID, recorded}:
					case <-ctx.Done():
					}
				}
				wg.Go(func() {
					posted := sync.OnceFunc(func() { tell(false) })
					o.attempt(ctx, d, records, posted)
					posted()
					tell(true)
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case r := <-results:
			if r.recorded {
				delete(inflight, r.id)
			} else {
				perEndpoint[r.endpoint]--
				posting--
			}
		case <-wake:
		case <-tick.C:
			gauges()
		}
	}
}

// attempt makes one attempt at d and records it; it calls posted once the
// post is over, before recording.
func (o *Outbox) attempt(ctx context.Context, d *state.Delivery, records chan<- record, posted func()) {
	st := o.Store.State()
	ep, err := st.Endpoint(d.EndpointID)
	if err != nil {
		return // deleted while due
	}
	now := o.Now()
	body, msgID := d.Payload, d.ID
	var event *state.Event
	if d.EventSeq != 0 {
		if event = d.Event; event == nil { // kept by the delivery once trimmed from the log
			event, err = st.EventBySeq(d.EventSeq)
		}
		if err != nil {
			o.record(ctx, records, d, ep, state.Attempt{At: now.UnixMilli(), Result: Failed.String(), Error: "the event is no longer kept (--event-retention, --event-limit)"}, 0, "")
			return
		}
		body, msgID = o.Render(event), fmt.Sprintf("evt_%016x", event.Seq)
	}
	var keys [][]byte
	for _, s := range ep.SigningSecrets(now.UnixMilli()) {
		if k, err := ParseSecret(s); err == nil {
			keys = append(keys, k)
		}
	}
	a := o.Sender.Send(ctx, ep.URL, Header(keys, msgID, now, body), body)
	posted()
	if ctx.Err() != nil {
		return // leadership lost mid-attempt: the next leader makes it again
	}
	o.Metrics.Deliveries.WithLabelValues(a.Result.String()).Inc()
	rec := state.Attempt{At: now.UnixMilli(), Status: a.Status, LatencyMs: a.Latency.Milliseconds(), Result: a.Result.String(), Error: a.Error}
	if a.Result == Delivered {
		if event != nil {
			o.Metrics.Latency.Observe(max(0, float64(o.Now().UnixMilli()-event.CreatedAt)/1000))
		}
		o.record(ctx, records, d, ep, rec, 0, "")
		return
	}
	disable := ""
	switch failingSince := ep.FailingSince; {
	case a.Result == Gone:
		disable = "the endpoint answered 410 Gone"
	case failingSince > 0 && now.Sub(time.UnixMilli(failingSince)) >= DisableAfter:
		disable = fmt.Sprintf("every attempt failed for %s", DisableAfter)
	}
	var next int64
	if delay, ok := nextIn(o.Delays, o.Throttle, len(d.Attempts)+1, a.Result, a.TimedOut, a.RetryAfter, o.Jitter()); ok && disable == "" {
		next = now.Add(delay).UnixMilli()
	}
	o.record(ctx, records, d, ep, rec, next, disable)
	if disable != "" {
		o.Logger.Warn("webhook endpoint disabled", "webhook_id", ep.ID, "url", ep.URL, "reason", disable)
	}
}

// record is one attempt's op on its way to the log, and where to say it
// was written.
type record struct {
	op   state.WebhookOp
	done chan error
}

// maxRecordBatch bounds the attempts one entry records.
const maxRecordBatch = 256

// recordLoop writes the attempts' results: those that finish while one
// entry is being written go together in the next, so a busy outbox makes
// one write for many attempts rather than one each.
func (o *Outbox) recordLoop(ctx context.Context, records <-chan record) {
	for {
		var batch []record
		select {
		case <-ctx.Done():
			return
		case r := <-records:
			batch = append(batch, r)
		}
	more:
		for len(batch) < maxRecordBatch {
			select {
			case r := <-records:
				batch = append(batch, r)
			default:
				break more
			}
		}
		ops := make([]state.WebhookOp, len(batch))
		for i, r := range batch {
			ops[i] = r.op
		}
		_, err := o.Store.WebhookOps(ctx, ops)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// record writes an attempt, with when the next is due and whether it
// disables the endpoint, and returns once it is written (or could not be).
func (o *Outbox) record(ctx context.Context, records chan<- record, d *state.Delivery, ep *state.Endpoint, a state.Attempt, next int64, disable string) {
	r := record{op: state.WebhookOp{Op: state.WebhookAttempt, Now: a.At, ID: ep.ID, Delivery: d.ID, Attempt: &a, NextAt: next, Disable: disable},
		done: make(chan error, 1)}
	var err error
	select {
	case records <- r:
		select {
		case err = <-r.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil && ctx.Err() == nil {
		o.Logger.Warn("record a webhook attempt", "webhook_id", ep.ID, "delivery", d.ID, "err", err)
	}
}
