package api

import "encoding/json"

// EventType names what happened: to a task, or to a webhook endpoint.
type EventType string

// Event types.
const (
	EventTaskCreated    EventType = "task.created"
	EventTaskProcessing EventType = "task.processing"
	EventTaskCompleted  EventType = "task.completed"
	EventTaskFailed     EventType = "task.failed"
	EventTaskCancelled  EventType = "task.cancelled"
	EventStepCompleted  EventType = "step.completed"
	EventStepFailed     EventType = "step.failed"
	EventStepRetrying   EventType = "step.retrying"
	// EventWebhookDisabled says an endpoint stopped receiving events: it
	// answered 410, failed for 5 days, or was disabled by hand. Its data
	// is the endpoint.
	EventWebhookDisabled EventType = "webhook.disabled"
	// EventWebhookTest is the type of the message POST
	// /webhooks/{id}/test sends; it is not in the event log.
	EventWebhookTest EventType = "webhook.test"
)

// EventTypes lists every event type, in the order a task meets them, then
// the endpoints' own.
var EventTypes = []EventType{EventTaskCreated, EventTaskProcessing, EventStepCompleted, EventStepRetrying, EventStepFailed,
	EventTaskCompleted, EventTaskFailed, EventTaskCancelled, EventWebhookDisabled}

// Event is one thing that happened to a task, as GET /events and the live
// feed show it. Its id orders events: the order of the replicated log.
type Event struct {
	ID        string    `json:"id"`     // "evt_" + 16 hex digits
	Object    string    `json:"object"` // "event"
	Type      EventType `json:"type"`
	CreatedAt int64     `json:"created_at"`
	// Step names the step of a step.* event, with its attempt; absent
	// otherwise.
	Step *EventStep `json:"step,omitempty"`
	// Data is the task as GET /tasks/{id} showed it then, without signed
	// URLs; or, for a webhook.* event, the endpoint.
	Data EventData `json:"data"`
}

// EventData is what an event is about: its task (the embedded Task), or,
// for a webhook.* event, the endpoint (Webhook, without its secret; the
// Task is then empty). In JSON it is the one object or the other, told
// apart by its "object".
type EventData struct {
	Task
	Webhook *Webhook `json:"-"`
}

// MarshalJSON writes the endpoint of a webhook.* event, the task of any
// other.
func (d EventData) MarshalJSON() ([]byte, error) {
	if d.Webhook != nil {
		return json.Marshal(d.Webhook)
	}
	return json.Marshal(d.Task)
}

// UnmarshalJSON reads a task, or an endpoint when its object is webhook.
func (d *EventData) UnmarshalJSON(b []byte) error {
	var probe struct {
		Object string `json:"object"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	if probe.Object == "webhook" {
		d.Webhook = new(Webhook)
		return json.Unmarshal(b, d.Webhook)
	}
	return json.Unmarshal(b, &d.Task)
}

// EventStep is the step a step.* event is about.
type EventStep struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Attempt int    `json:"attempt"`
}

// Webhook is a webhook endpoint. Secret is shown only when it is made: in
// the answers of POST /webhooks and POST /webhooks/{id}/rotate.
type Webhook struct {
	ID          string   `json:"id"`     // "wh_…"
	Object      string   `json:"object"` // "webhook"
	URL         string   `json:"url"`
	Events      []string `json:"events"` // event types, or "*"
	Description string   `json:"description"`
	// Status is enabled or disabled; DisabledReason says why.
	Status         string `json:"status"`
	DisabledReason string `json:"disabled_reason,omitempty"`
	Secret         string `json:"secret,omitempty"`
	// FailingSince is the first failed attempt since the last delivered
	// one; null while it delivers.
	FailingSince *int64 `json:"failing_since"`
	CreatedAt    int64  `json:"created_at"`
	UpdatedAt    int64  `json:"updated_at"`
}

// WebhookRequest creates (POST /webhooks: url and events required) or
// changes (PATCH /webhooks/{id}: what is given) an endpoint.
type WebhookRequest struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	// Status enabled or disabled (PATCH only).
	Status *string `json:"status,omitempty"`
}

// Delivery is one message on its way to an endpoint, with its attempts.
type Delivery struct {
	ID        string    `json:"id"`     // "dlv_…"
	Object    string    `json:"object"` // "delivery"
	Webhook   string    `json:"webhook"`
	EventID   string    `json:"event_id"` // the webhook-id header of every attempt
	EventType EventType `json:"event_type"`
	// Status is pending, delivered or failed; NextAttemptAt is when a
	// pending one is tried next.
	Status        string            `json:"status"`
	NextAttemptAt *int64            `json:"next_attempt_at"`
	CreatedAt     int64             `json:"created_at"`
	Attempts      []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt is one attempt of a delivery.
type DeliveryAttempt struct {
	At         int64  `json:"at"`
	StatusCode int    `json:"status_code"` // 0 when no answer came
	LatencyMs  int64  `json:"latency_ms"`
	Result     string `json:"result"` // delivered, failed, throttled, gone, blocked
	Error      string `json:"error,omitempty"`
}
