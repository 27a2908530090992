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
	ID     string `json:"id"`     // "proj_…"
	Object string `json:"object"` // "project"
	Name   string `json:"name"`
	// Weight is the project's share of the fleet against the others at
	// the same priority (1 to 100; default 1).
	Weight int `json:"weight"`
	// MaxConcurrentTasks caps the project's tasks running at once; the
	// rest wait in the queue, they are not refused (0: no cap).
	MaxConcurrentTasks int   `json:"max_concurrent_tasks"`
	CreatedAt          int64 `json:"created_at"`
}

// ProjectRequest creates a project (POST /projects).
type ProjectRequest struct {
	Name               *string `json:"name,omitempty"`
	Weight             *int    `json:"weight,omitempty"`
	MaxConcurrentTasks *int    `json:"max_concurrent_tasks,omitempty"`
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
	// Priority is the priority of the key's tasks that name none.
	Priority string `json:"priority"`
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
	Priority  *string  `json:"priority,omitempty"`
}

// Connection is a project's access to one S3 bucket: tasks of the project
// whose input or output is s3://<bucket>/… use its credentials. The
// secret access key is sealed before it is stored and never shown.
type Connection struct {
	ID          string `json:"id"`     // "conn_…"
	Object      string `json:"object"` // "connection"
	Name        string `json:"name"`
	Project     string `json:"project"`
	Kind        string `json:"kind"` // "s3"
	Bucket      string `json:"bucket"`
	Endpoint    string `json:"endpoint"`
	Region      string `json:"region"`
	PathStyle   bool   `json:"path_style"`
	AccessKeyID string `json:"access_key_id"`
	CreatedAt   int64  `json:"created_at"`
	UpdatedAt   int64  `json:"updated_at"`
}

// ConnectionRequest creates (POST /connections: name, kind, bucket,
// access_key_id and secret_access_key required; project with an
// operator's key) or changes (PATCH /connections/{id}: what is given) a
// connection.
type ConnectionRequest struct {
	Name            *string `json:"name,omitempty"`
	Project         *string `json:"project,omitempty"`
	Kind            *string `json:"kind,omitempty"`
	Bucket          *string `json:"bucket,omitempty"`
	Endpoint        *string `json:"endpoint,omitempty"`
	Region          *string `json:"region,omitempty"`
	PathStyle       *bool   `json:"path_style,omitempty"`
	AccessKeyID     *string `json:"access_key_id,omitempty"`
	SecretAccessKey *string `json:"secret_access_key,omitempty"`
}
