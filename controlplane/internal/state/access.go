package state

import (
	"slices"

	"github.com/hashicorp/go-memdb"
)

// Projects and their API keys. The operator's keys (from the environment
// or the config file) are not here: they are every server's own, and see
// every project. A project's keys are replicated, each as the SHA-256 of
// its secret: every server admits them from its own copy, and a revoked
// key is refused by each as soon as it applies the revocation.

// Project is a tenant: its keys see only its tasks, events and webhook
// endpoints.
type Project struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Weight is its share against other projects at a priority (0: 1).
	Weight int `json:"weight,omitempty"`
	// MaxConcurrentTasks caps its tasks running at once (0: no cap); the
	// rest wait in the queue.
	MaxConcurrentTasks int   `json:"max_concurrent_tasks,omitempty"`
	CreatedAt          int64 `json:"created_at"`
}

// Key is a project's API key.
type Key struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Project string   `json:"project"`
	Scopes  []string `json:"scopes"`
	// RateLimit is requests per second; 0: the server's default.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// Priority is the priority of its tasks that name none ("": normal).
	Priority string `json:"priority,omitempty"`
	// Prefix is the secret's first characters; Hash the hex SHA-256 of
	// the whole secret.
	Prefix    string `json:"prefix"`
	Hash      string `json:"hash"`
	CreatedAt int64  `json:"created_at"`
}

// Connection is a project's access to one S3 bucket. Its secret access
// key is sealed (package seal) by the server that took it, bound to the
// connection's id: the log, snapshots and every copy of the state hold
// only the sealed bytes.
type Connection struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Project     string `json:"project"`
	Kind        string `json:"kind"`
	Bucket      string `json:"bucket"`
	Endpoint    string `json:"endpoint,omitempty"`
	Region      string `json:"region,omitempty"`
	PathStyle   bool   `json:"path_style,omitempty"`
	AccessKeyID string `json:"access_key_id"`
	Sealed      []byte `json:"sealed"`
	CreatedAt   int64  `json:"created_at"`
	UpdatedAt   int64  `json:"updated_at"`
}

// Has reports whether the key holds scope.
func (k *Key) Has(scope string) bool { return slices.Contains(k.Scopes, scope) }

// AccessOpKind names a change of the projects and keys.
type AccessOpKind string

// Access ops.
const (
	// ProjectCreate adds Project.
	ProjectCreate AccessOpKind = "project_create"
	// KeyCreate adds Key to its project, which must exist.
	KeyCreate AccessOpKind = "key_create"
	// KeyRevoke removes key ID: every server refuses it from then on.
	KeyRevoke AccessOpKind = "key_revoke"
	// ConnectionCreate adds Connection to its project, which must exist
	// and have none for the bucket.
	ConnectionCreate AccessOpKind = "connection_create"
	// ConnectionUpdate replaces connection ID with Connection (the same
	// id, project and bucket).
	ConnectionUpdate AccessOpKind = "connection_update"
	// ConnectionDelete removes connection ID.
	ConnectionDelete AccessOpKind = "connection_delete"
)

// AccessOp is one change of the projects and keys, stamped by the leader.
type AccessOp struct {
	Op         AccessOpKind `json:"op"`
	Now        int64        `json:"now"`
	ID         string       `json:"id,omitempty"`
	Project    *Project     `json:"project,omitempty"`
	Key        *Key         `json:"key,omitempty"`
	Connection *Connection  `json:"connection,omitempty"`
}

// Why an access op was refused.
const (
	AccessExists         = "exists"
	AccessNotFound       = "not_found"
	AccessUnknownProject = "unknown_project"
	AccessUnknownOp      = "unknown_op"
)

// AccessResult is what became of one op: the project or key it made or
// removed, or why it was refused (Access*).
type AccessResult struct {
	Project    *Project    `json:"-"`
	Key        *Key        `json:"-"`
	Connection *Connection `json:"-"`
	Err        string      `json:"err,omitempty"`
}

// ApplyAccessOps applies ops in order.
func (s *Store) ApplyAccessOps(ops []AccessOp) []AccessResult {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	out := make([]AccessResult, len(ops))
	for i, op := range ops {
		out[i] = applyAccessOp(txn, op)
	}
	txn.Commit()
	return out
}

func applyAccessOp(txn *memdb.Txn, op AccessOp) AccessResult {
	switch op.Op {
	case ProjectCreate:
		if op.Project == nil || first[Project](txn, tableProjects, "id", op.Project.ID) != nil {
			return AccessResult{Err: AccessExists}
		}
		p := *op.Project
		mustInsert(txn, tableProjects, &p)
		return AccessResult{Project: &p}
	case KeyCreate:
		if op.Key == nil || first[Key](txn, tableKeys, "id", op.Key.ID) != nil || first[Key](txn, tableKeys, "hash", op.Key.Hash) != nil {
			return AccessResult{Err: AccessExists}
		}
		if first[Project](txn, tableProjects, "id", op.Key.Project) == nil {
			return AccessResult{Err: AccessUnknownProject}
		}
		k := *op.Key
		k.Scopes = slices.Clone(k.Scopes)
		mustInsert(txn, tableKeys, &k)
		return AccessResult{Key: &k}
	case KeyRevoke:
		k := first[Key](txn, tableKeys, "id", op.ID)
		if k == nil {
			return AccessResult{Err: AccessNotFound}
		}
		_ = txn.Delete(tableKeys, k)
		return AccessResult{Key: k}
	case ConnectionCreate:
		c := op.Connection
		if c == nil || first[Connection](txn, tableConnections, "id", c.ID) != nil || first[Connection](txn, tableConnections, "bucket", c.Project+"\x00"+c.Bucket) != nil {
			return AccessResult{Err: AccessExists}
		}
		if first[Project](txn, tableProjects, "id", c.Project) == nil {
			return AccessResult{Err: AccessUnknownProject}
		}
		n := *c
		mustInsert(txn, tableConnections, &n)
		return AccessResult{Connection: &n}
	case ConnectionUpdate:
		cur := first[Connection](txn, tableConnections, "id", op.ID)
		if cur == nil || op.Connection == nil || op.Connection.ID != cur.ID || op.Connection.Project != cur.Project || op.Connection.Bucket != cur.Bucket {
			return AccessResult{Err: AccessNotFound}
		}
		n := *op.Connection
		mustInsert(txn, tableConnections, &n)
		return AccessResult{Connection: &n}
	case ConnectionDelete:
		cur := first[Connection](txn, tableConnections, "id", op.ID)
		if cur == nil {
			return AccessResult{Err: AccessNotFound}
		}
		_ = txn.Delete(tableConnections, cur)
		return AccessResult{Connection: cur}
	}
	return AccessResult{Err: AccessUnknownOp}
}

// first returns the first object of table whose index holds args, or nil.
func first[T any](txn *memdb.Txn, table, index string, args ...any) *T {
	raw, err := txn.First(table, index, args...)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*T)
}

// Project returns project id, or ErrNotFound.
func (s *Store) Project(id string) (*Project, error) {
	p := first[Project](s.db.Load().Txn(false), tableProjects, "id", id)
	if p == nil {
		return nil, ErrNotFound
	}
	return p, nil
}

// Projects returns every project, by id (in order of creation: ids are
// ULIDs).
func (s *Store) Projects() []*Project { return all[Project](s.db.Load().Txn(false), tableProjects) }

// Key returns key id, or ErrNotFound.
func (s *Store) Key(id string) (*Key, error) {
	k := first[Key](s.db.Load().Txn(false), tableKeys, "id", id)
	if k == nil {
		return nil, ErrNotFound
	}
	return k, nil
}

// KeyByHash returns the key whose secret has the hex SHA-256 hash, or
// nil: a revoked key is gone.
func (s *Store) KeyByHash(hash string) *Key {
	return first[Key](s.db.Load().Txn(false), tableKeys, "hash", hash)
}

// Keys returns the keys of project (every project's when it is ""), by
// id.
func (s *Store) Keys(project string) []*Key {
	var out []*Key
	for _, k := range all[Key](s.db.Load().Txn(false), tableKeys) {
		if project == "" || k.Project == project {
			out = append(out, k)
		}
	}
	return out
}

func all[T any](txn *memdb.Txn, table string) []*T {
	it, err := txn.Get(table, "id")
	if err != nil {
		return nil
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out
}

// Connection returns connection id, or ErrNotFound.
func (s *Store) Connection(id string) (*Connection, error) {
	c := first[Connection](s.db.Load().Txn(false), tableConnections, "id", id)
	if c == nil {
		return nil, ErrNotFound
	}
	return c, nil
}

// BucketConnection returns project's connection for bucket, or nil.
func (s *Store) BucketConnection(project, bucket string) *Connection {
	return first[Connection](s.db.Load().Txn(false), tableConnections, "bucket", project+"\x00"+bucket)
}

// Connections returns the connections of project (every project's when
// it is ""), by id.
func (s *Store) Connections(project string) []*Connection {
	var out []*Connection
	for _, c := range all[Connection](s.db.Load().Txn(false), tableConnections) {
		if project == "" || c.Project == project {
			out = append(out, c)
		}
	}
	return out
}
