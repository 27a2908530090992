package state

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// Webhook endpoints and their outbox live in the replicated state: an
// event committed makes a delivery for each enabled endpoint that wants
// its type, in the same apply, so every node holds the same outbox and a
// new leader resumes it after a failover. Whatever needs a clock, a random
// draw or the network (ids, secrets, when the next attempt is, what an
// attempt came to) the leader decides before it writes the op.

// Endpoint is a webhook endpoint.
type Endpoint struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"` // event types, or "*"
	Description string   `json:"description,omitempty"`
	// Secrets sign each delivery: the current one first (Until 0), then
	// old ones until their Until (epoch ms), so that receivers have time
	// to change.
	Secrets []Secret `json:"secrets"`
	// Disabled says why the endpoint gets nothing ("" while enabled).
	Disabled  string `json:"disabled,omitempty"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
	// FailingSince is the first failed attempt since the last delivered
	// one (epoch ms; 0 while the endpoint delivers).
	FailingSince int64 `json:"failing_since,omitempty"`
	// Project is the project whose key made the endpoint: it gets only
	// that project's events. "" (the operator's) gets every event.
	Project string `json:"project,omitempty"`
}

// Secret is one signing secret of an endpoint, "whsec_…".
type Secret struct {
	Secret string `json:"secret"`
	Until  int64  `json:"until,omitempty"`
}

// Wants says whether the endpoint takes events of type t.
func (e *Endpoint) Wants(t api.EventType) bool {
	return e.Disabled == "" && (slices.Contains(e.Events, "*") || slices.Contains(e.Events, string(t)))
}

// SigningSecrets are the secrets that sign a delivery at time now: the
// current one and those still in their grace period.
func (e *Endpoint) SigningSecrets(now int64) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.Until == 0 || s.Until > now {
			out = append(out, s.Secret)
		}
	}
	return out
}

// Delivery is one event on its way to one endpoint: its attempts so far,
// and when the next is due.
type Delivery struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	// EventSeq is the event delivered; a test message has none and carries
	// its Payload.
	EventSeq  uint64        `json:"event_seq,omitempty"`
	EventType api.EventType `json:"event_type"`
	// TaskID is the task of the event: a task's events reach an endpoint
	// in order.
	TaskID  string          `json:"task_id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Event is the event itself once it has been trimmed from the log
	// while this delivery was still owed (nil otherwise).
	Event     *Event    `json:"event,omitempty"`
	CreatedAt int64     `json:"created_at"`
	Attempts  []Attempt `json:"attempts,omitempty"`
	// Status is pending, delivered or failed; NextAt (epoch ms) is when a
	// pending delivery's next attempt is due.
	Status DeliveryStatus `json:"status"`
	NextAt int64          `json:"next_at,omitempty"`
	// Manual marks a retry asked for by hand: if it fails, it is not
	// scheduled again.
	Manual bool `json:"manual,omitempty"`
	// PendingKey indexes pending deliveries by endpoint and when they are
	// due, TaskKey by endpoint, task and event; both are "" once done, so
	// their indexes hold only pending ones.
	PendingKey string `json:"-"`
	TaskKey    string `json:"-"`
}

// DeliveryStatus says where a delivery stands.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Attempt is one attempt at a delivery, as the leader saw it.
type Attempt struct {
	At        int64  `json:"at"`
	Status    int    `json:"status_code,omitempty"`
	LatencyMs int64  `json:"latency_ms"`
	Result    string `json:"result"`
	Error     string `json:"error,omitempty"`
}

func (d *Delivery) setPending() {
	d.PendingKey, d.TaskKey = "", ""
	if d.Status == DeliveryPending {
		d.PendingKey = fmt.Sprintf("%s|%020d|%s", d.EndpointID, d.NextAt, d.ID)
		if d.TaskID != "" {
			d.TaskKey = taskKeyPrefix(d.EndpointID, d.TaskID) + fmt.Sprintf("%020d", d.EventSeq)
		}
	}
}

func taskKeyPrefix(endpointID, taskID string) string { return endpointID + "|" + taskID + "|" }

// pendingOfTask returns the pending deliveries of task's events to
// endpoint, oldest event first.
func pendingOfTask(txn *memdb.Txn, endpointID, taskID string, limit int) []*Delivery {
	prefix := taskKeyPrefix(endpointID, taskID)
	it, err := txn.LowerBound(tableDeliveries, "pending_task", prefix)
	if err != nil {
		return nil
	}
	var out []*Delivery
	for raw := it.Next(); raw != nil && len(out) < limit; raw = it.Next() {
		d := raw.(*Delivery)
		if !strings.HasPrefix(d.TaskKey, prefix) {
			break
		}
		out = append(out, d)
	}
	return out
}

// holdBehind moves the pending deliveries of d's task's later events to
// d's endpoint to no sooner than d's next attempt: they wait for it in
// any case, and so they stay out of the way of the deliveries that can go.
func holdBehind(txn *memdb.Txn, d *Delivery) {
	if d.TaskID == "" {
		return
	}
	var later []*Delivery
	for _, o := range pendingOfTask(txn, d.EndpointID, d.TaskID, math.MaxInt) {
		if o.EventSeq > d.EventSeq && o.NextAt < d.NextAt {
			later = append(later, o)
		}
	}
	for _, cur := range later {
		o := *cur
		o.NextAt = d.NextAt
		o.setPending()
		mustInsert(txn, tableDeliveries, &o)
	}
}

// DeliveryID names the delivery of an event to an endpoint.
func DeliveryID(eventSeq uint64, endpointID string) string {
	return fmt.Sprintf("dlv_%016x_%s", eventSeq, endpointID)
}

// WebhookOpKind names a change of the webhooks' state.
type WebhookOpKind string

// Webhook ops.
const (
	// WebhookCreate adds Endpoint (id, secret and times made by the
	// leader).
	WebhookCreate WebhookOpKind = "create"
	// WebhookUpdate replaces Endpoint's URL, events, description and
	// Disabled (re-enabling clears its failing streak).
	WebhookUpdate WebhookOpKind = "update"
	// WebhookDelete removes endpoint ID and its deliveries.
	WebhookDelete WebhookOpKind = "delete"
	// WebhookRotate makes Secret endpoint ID's current secret; the old one
	// signs too until Until.
	WebhookRotate WebhookOpKind = "rotate"
	// WebhookAttempt records Attempt on delivery Delivery: delivered, due
	// again at NextAt, or failed for good (NextAt 0); Disable, when set,
	// disables its endpoint with that reason.
	WebhookAttempt WebhookOpKind = "attempt"
	// WebhookRetry makes delivery Delivery due now again, by hand.
	WebhookRetry WebhookOpKind = "retry"
	// WebhookTest queues Test, a test message, to endpoint ID.
	WebhookTest WebhookOpKind = "test"
)

// WebhookOp is one change of the webhooks' state, stamped by the leader.
type WebhookOp struct {
	Op       WebhookOpKind `json:"op"`
	Now      int64         `json:"now"`
	ID       string        `json:"id,omitempty"` // an endpoint
	Endpoint *Endpoint     `json:"endpoint,omitempty"`
	Secret   string        `json:"secret,omitempty"`
	Until    int64         `json:"until,omitempty"`
	Delivery string        `json:"delivery,omitempty"`
	Attempt  *Attempt      `json:"attempt,omitempty"`
	NextAt   int64         `json:"next_at,omitempty"`
	Disable  string        `json:"disable,omitempty"`
	Test     *Delivery     `json:"test,omitempty"`
}

// WebhookResult is what became of one op: the endpoint or delivery it
// left, or why it was refused ("not_found").
type WebhookResult struct {
	Endpoint *Endpoint `json:"-"`
	Delivery *Delivery `json:"-"`
	Err      string    `json:"err,omitempty"`
}

// ApplyWebhookOps applies ops in order.
func (s *Store) ApplyWebhookOps(ops []WebhookOp) []WebhookResult {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	out := make([]WebhookResult, len(ops))
	for i, op := range ops {
		out[i] = s.applyWebhookOp(txn, op)
	}
	s.endpoints = anyEndpoint(txn)
	txn.Commit()
	s.eventsCommitted()
	return out
}

// anyEndpoint reports whether a webhook endpoint exists.
func anyEndpoint(txn *memdb.Txn) bool {
	raw, err := txn.First(tableWebhooks, "id")
	return err == nil && raw != nil
}

func getEndpoint(txn *memdb.Txn, id string) *Endpoint {
	raw, err := txn.First(tableWebhooks, "id", id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Endpoint)
}

func getDelivery(txn *memdb.Txn, id string) *Delivery {
	raw, err := txn.First(tableDeliveries, "id", id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Delivery)
}

func (s *Store) applyWebhookOp(txn *memdb.Txn, op WebhookOp) WebhookResult {
	notFound := WebhookResult{Err: "not_found"}
	switch op.Op {
	case WebhookCreate:
		if op.Endpoint == nil || getEndpoint(txn, op.Endpoint.ID) != nil {
			return WebhookResult{Err: "exists"}
		}
		e := *op.Endpoint
		mustInsert(txn, tableWebhooks, &e)
		s.endpoints = true
		return WebhookResult{Endpoint: &e}
	case WebhookUpdate:
		cur := getEndpoint(txn, op.ID)
		if cur == nil || op.Endpoint == nil {
			return notFound
		}
		e := *cur
		e.URL, e.Events, e.Description, e.UpdatedAt = op.Endpoint.URL, op.Endpoint.Events, op.Endpoint.Description, op.Now
		if e.Disabled != "" && op.Endpoint.Disabled == "" {
			e.FailingSince = 0
		}
		e.Disabled = op.Endpoint.Disabled
		mustInsert(txn, tableWebhooks, &e)
		if cur.Disabled == "" && e.Disabled != "" {
			s.endpointEvent(txn, api.EventWebhookDisabled, e, op.Now)
		}
		return WebhookResult{Endpoint: &e}
	case WebhookDelete:
		cur := getEndpoint(txn, op.ID)
		if cur == nil {
			return notFound
		}
		_ = txn.Delete(tableWebhooks, cur)
		_, _ = txn.DeleteAll(tableDeliveries, "endpoint", op.ID)
		return WebhookResult{Endpoint: cur}
	case WebhookRotate:
		cur := getEndpoint(txn, op.ID)
		if cur == nil || op.Secret == "" {
			return notFound
		}
		e := *cur
		secrets := []Secret{{Secret: op.Secret}}
		for _, old := range cur.Secrets {
			switch {
			case old.Until == 0:
				secrets = append(secrets, Secret{Secret: old.Secret, Until: op.Until})
			case old.Until > op.Now:
				secrets = append(secrets, old)
			}
		}
		e.Secrets, e.UpdatedAt = secrets, op.Now
		mustInsert(txn, tableWebhooks, &e)
		return WebhookResult{Endpoint: &e}
	case WebhookAttempt:
		cur := getDelivery(txn, op.Delivery)
		if cur == nil || op.Attempt == nil || cur.Status != DeliveryPending {
			return notFound
		}
		d := *cur
		d.Attempts = append(slices.Clip(d.Attempts), *op.Attempt)
		switch {
		case op.Attempt.Result == "delivered":
			d.Status, d.NextAt = DeliveryDelivered, 0
		case op.NextAt > 0 && !d.Manual:
			d.NextAt = op.NextAt
		default:
			d.Status, d.NextAt = DeliveryFailed, 0
		}
		d.Manual = false
		d.setPending()
		mustInsert(txn, tableDeliveries, &d)
		if d.Status == DeliveryPending {
			holdBehind(txn, &d)
		}
		if ep := getEndpoint(txn, d.EndpointID); ep != nil {
			e := *ep
			switch {
			case op.Attempt.Result == "delivered":
				e.FailingSince = 0
			case e.FailingSince == 0:
				e.FailingSince = op.Attempt.At
			}
			disabled := op.Disable != "" && e.Disabled == ""
			if disabled {
				e.Disabled = op.Disable
				s.dropPending(txn, e.ID)
			}
			mustInsert(txn, tableWebhooks, &e)
			if disabled {
				s.endpointEvent(txn, api.EventWebhookDisabled, e, op.Attempt.At)
			}
		}
		return WebhookResult{Delivery: &d}
	case WebhookRetry:
		cur := getDelivery(txn, op.Delivery)
		if cur == nil || cur.EndpointID != op.ID {
			return notFound
		}
		d := *cur
		d.Status, d.NextAt, d.Manual = DeliveryPending, op.Now, true
		d.setPending()
		mustInsert(txn, tableDeliveries, &d)
		return WebhookResult{Delivery: &d}
	case WebhookTest:
		if getEndpoint(txn, op.ID) == nil || op.Test == nil {
			return notFound
		}
		d := *op.Test
		d.EndpointID, d.Status, d.NextAt = op.ID, DeliveryPending, op.Now
		d.setPending()
		mustInsert(txn, tableDeliveries, &d)
		return WebhookResult{Delivery: &d}
	}
	return WebhookResult{Err: "unknown_op"}
}

// dropPending ends the pending deliveries of a disabled endpoint: failed,
// with nothing more to try (a retry by hand can still send one).
func (s *Store) dropPending(txn *memdb.Txn, endpointID string) {
	it, err := txn.Get(tableDeliveries, "endpoint", endpointID)
	if err != nil {
		return
	}
	var pending []*Delivery
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if d := raw.(*Delivery); d.Status == DeliveryPending {
			pending = append(pending, d)
		}
	}
	for _, cur := range pending {
		d := *cur
		d.Status, d.NextAt = DeliveryFailed, 0
		d.setPending()
		mustInsert(txn, tableDeliveries, &d)
	}
}

// outboxEvent queues event e for every endpoint that wants it.
func (s *Store) outboxEvent(txn *memdb.Txn, e *Event) {
	if !s.endpoints {
		return
	}
	it, err := txn.Get(tableWebhooks, "id")
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ep := raw.(*Endpoint)
		if !ep.Wants(e.Type) || (ep.Project != "" && e.Project() != ep.Project) {
			continue
		}
		d := &Delivery{ID: DeliveryID(e.Seq, ep.ID), EndpointID: ep.ID, EventSeq: e.Seq, EventType: e.Type, TaskID: e.TaskID(), CreatedAt: e.CreatedAt,
			Status: DeliveryPending, NextAt: e.CreatedAt}
		if d.TaskID != "" {
			// Behind an earlier event of its task that is being retried.
			if first := pendingOfTask(txn, ep.ID, d.TaskID, 1); len(first) == 1 {
				d.NextAt = max(d.NextAt, first[0].NextAt)
			}
		}
		d.setPending()
		mustInsert(txn, tableDeliveries, d)
	}
}

// Endpoints returns every webhook endpoint, by id.
func (s *Store) Endpoints() []*Endpoint {
	it, err := s.db.Load().Txn(false).Get(tableWebhooks, "id")
	if err != nil {
		return nil
	}
	var out []*Endpoint
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Endpoint))
	}
	return out
}

// Endpoint returns one endpoint, or ErrNotFound.
func (s *Store) Endpoint(id string) (*Endpoint, error) {
	if e := getEndpoint(s.db.Load().Txn(false), id); e != nil {
		return e, nil
	}
	return nil, ErrNotFound
}

// Deliveries returns an endpoint's deliveries, newest first, at most limit.
func (s *Store) Deliveries(endpointID string, limit int) []*Delivery {
	it, err := s.db.Load().Txn(false).Get(tableDeliveries, "endpoint", endpointID)
	if err != nil {
		return nil
	}
	var out []*Delivery
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Delivery))
	}
	slices.SortFunc(out, func(a, b *Delivery) int {
		return cmp.Or(cmp.Compare(b.CreatedAt, a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	return out[:min(len(out), limit)]
}

// Delivery returns one delivery, or ErrNotFound.
func (s *Store) Delivery(id string) (*Delivery, error) {
	if d := getDelivery(s.db.Load().Txn(false), id); d != nil {
		return d, nil
	}
	return nil, ErrNotFound
}

// DueDeliveries returns the pending deliveries to endpoint endpointID due
// by now, soonest first, at most limit, leaving out those skip names (the
// attempts under way). A task's events go to an endpoint in order: a
// delivery waits while an earlier event of its task is pending to the same
// endpoint (being retried), and goes once that one is delivered or has
// failed for good. Each endpoint is read on its own, so that a backlog at
// one never hides another's.
func (s *Store) DueDeliveries(endpointID string, now int64, limit int, skip func(id string) bool) []*Delivery {
	txn := s.db.Load().Txn(false)
	prefix := endpointID + "|"
	it, err := txn.LowerBound(tableDeliveries, "pending", prefix)
	if err != nil {
		return nil
	}
	var due []*Delivery
	for raw := it.Next(); raw != nil && len(due) < limit; raw = it.Next() {
		d := raw.(*Delivery)
		if !strings.HasPrefix(d.PendingKey, prefix) || d.NextAt > now {
			break
		}
		if skip(d.ID) {
			continue
		}
		if d.TaskID != "" {
			if first := pendingOfTask(txn, endpointID, d.TaskID, 1); len(first) == 1 && first[0].ID != d.ID {
				continue
			}
		}
		due = append(due, d)
	}
	return due
}

// PendingDeliveries counts the deliveries still to make: the outbox's
// depth.
func (s *Store) PendingDeliveries() int { return s.count(tableDeliveries, "pending") }

// EventBySeq returns one event, or ErrNotFound (trimmed, or never).
func (s *Store) EventBySeq(seq uint64) (*Event, error) {
	e, ok := s.events.Load().get(seq)
	if !ok {
		return nil, ErrNotFound
	}
	return e, nil
}
