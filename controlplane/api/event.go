package api

// EventType names what happened to a task.
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
)

// EventTypes lists every event type, in the order a task meets them.
var EventTypes = []EventType{EventTaskCreated, EventTaskProcessing, EventStepCompleted, EventStepRetrying, EventStepFailed,
	EventTaskCompleted, EventTaskFailed, EventTaskCancelled}

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
	// URLs.
	Data Task `json:"data"`
}

// EventStep is the step a step.* event is about.
type EventStep struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Attempt int    `json:"attempt"`
}
