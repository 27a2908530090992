package api

// Scopes a key may hold.
const (
	// ScopeTasksRead reads tasks and events: GET /tasks, GET /tasks/{id},
	// GET /events, GET /events/stream.
	ScopeTasksRead = "tasks:read"
	// ScopeTasksWrite creates and cancels tasks.
	ScopeTasksWrite = "tasks:write"
	// ScopeAdmin manages its project: its keys and webhook endpoints.
	ScopeAdmin = "admin"
)

// Scopes lists every scope, in the order the contract gives them.
func Scopes() []string { return []string{ScopeTasksRead, ScopeTasksWrite, ScopeAdmin} }

// DefaultScopes are a key's scopes when its request names none.
func DefaultScopes() []string { return []string{ScopeTasksRead, ScopeTasksWrite} }

// Project is a tenant of the cluster: its keys see, list and cancel only
// its own tasks, events and webhook endpoints. Projects are made with the
// operator's key.
type Project struct {
	ID        string `json:"id"`     // "proj_…"
	Object    string `json:"object"` // "project"
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
}

// ProjectRequest creates a project (POST /projects).
type ProjectRequest struct {
	Name *string `json:"name,omitempty"`
}

// Key is an API key of a project. Its secret is shown only when it is
// made, in the answer of POST /keys; the cluster keeps only its SHA-256.
type Key struct {
	ID      string   `json:"id"`     // "key_…"
	Object  string   `json:"object"` // "key"
	Name    string   `json:"name"`
	Project string   `json:"project"`
	Scopes  []string `json:"scopes"`
	// RateLimit is the key's requests per second (bursts of twice that);
	// 0: the server's --rate-limit.
	RateLimit float64 `json:"rate_limit"`
	// Prefix is the secret's first characters, to tell keys apart.
	Prefix    string `json:"prefix"`
	Secret    string `json:"secret,omitempty"`
	CreatedAt int64  `json:"created_at"`
}

// KeyRequest creates a key (POST /keys): name and project required.
type KeyRequest struct {
	Name      *string  `json:"name,omitempty"`
	Project   *string  `json:"project,omitempty"`
	Scopes    []string `json:"scopes,omitempty"`
	RateLimit *float64 `json:"rate_limit,omitempty"`
}
