// Package httpapi serves the control plane's REST API: the task routes of
// the contract, health and readiness, OpenAPI, and the internal routes
// servers and agents use. Handlers return errors; one adapter writes every
// error as {"kind","message"} with the contract's status. A request that
// reaches a follower is forwarded to the leader and answered as the leader
// answered it.
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/archive"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/webhooks"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/storage"
)

// Store is what the API needs of the replicated store.
type Store interface {
	State() *state.Store
	NodeID() string
	IsLeader() bool
	LeaderReady() bool
	VerifyLeader() error
	Leader() (id, httpAddr string, ok bool)
	// AppliedIndex is the last Raft entry applied here.
	AppliedIndex() uint64
	// StateIndex is the last Raft entry whose change State shows.
	StateIndex() uint64
	// CreateTasks commits new tasks; a new task's result is built when
	// asked (CreateResult.Resolve).
	CreateTasks(ctx context.Context, reqs []state.SeedRequest) ([]state.CreateResult, error)
	CancelTask(ctx context.Context, id string, now int64, req state.RequestKey) (*state.Task, error)
	WebhookOps(ctx context.Context, ops []state.WebhookOp) ([]state.WebhookResult, error)
	// AccessOps makes projects and keys and revokes keys
	// (store.ErrUpgrading while some voter does not apply them).
	AccessOps(ctx context.Context, ops []state.AccessOp) ([]state.AccessResult, error)
	Join(ctx context.Context, id, raftAddr, httpAddr string) error
	// Leave removes a voter (on the leader); Peers are the voters (id →
	// Raft address); Member is whether this node belongs to a cluster.
	Leave(id string) error
	HandOff() (string, error)
	// VotersEpoch and SetVotersApply: the newest Raft entry type every
	// voter applies, as WatchVoters learns it (see store.Store).
	VotersEpoch() uint64
	SetVotersApply(v int, epoch uint64)
	Peers() (map[string]string, error)
	Member() bool
	RaftAddr() string
}

// Config configures the API.
type Config struct {
	Store Store
	// Keys are the accepted API keys and node tokens, hashed.
	Keys *Keys
	// AllowPrivateInputs admits inputs on loopback and private networks
	// (and connections' endpoints there).
	AllowPrivateInputs bool
	// Sealer seals connections' secrets; nil: no connection can be made.
	Sealer Sealer
	// FleetBuckets are the buckets the fleet's own S3 identity serves to
	// every project: a project's task may use them without a connection.
	FleetBuckets []string
	// CheckS3, when set, replaces the test write that proves a
	// connection's credentials (tests).
	CheckS3 func(ctx context.Context, cfg storage.S3Config, bucket string) (code string, err error)
	// MaxBodyBytes caps request bodies; 0 means 1 MiB.
	MaxBodyBytes int64
	// ReadTimeout bounds the time a request may take to arrive, its body
	// included (its headers: 10 s); 0 means 30 seconds. See NewServer.
	ReadTimeout time.Duration
	// RateLimit is requests per second per API key (burst twice that); 0
	// means no limit.
	RateLimit float64
	// Ready adds a readiness condition besides a known leader (ittybit dev:
	// its agent has registered); nil means none.
	Ready func() error
	// Scheduler is the leader's dispatcher, for the agent routes and task
	// progress; nil serves no agent routes.
	Scheduler Scheduler
	// Archive holds the tasks retired from the state (package archive):
	// GET /tasks/{id} reads a task there when the state no longer has it,
	// GET /tasks?archived=true lists them. Nil: tasks never retire.
	Archive *archive.Archive
	// FileURL turns a managed-storage key into a signed URL for the
	// request's client; nil leaves managed:// URLs as they are.
	FileURL func(r *http.Request, key string) string
	// Registry receives the HTTP metrics; nil means none.
	Registry prometheus.Registerer
	// ForwardTimeout bounds a forwarded write, retries included; 0 means
	// 15 seconds.
	ForwardTimeout time.Duration
	// PeerDial, when set, connects to other servers (the fault tests'
	// proxy); nil dials TCP.
	PeerDial func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger   *slog.Logger
	// WebhookSender checks webhook endpoint URLs as deliveries will reach
	// them; nil makes one that allows private addresses only with
	// AllowPrivateInputs.
	WebhookSender *webhooks.Sender
	// NodeToken, when set, is the node token this server presents to the
	// leader when, as a follower, it forwards creates in batches; without
	// one it forwards them one request at a time.
	NodeToken string
	// LeaveSelf, when set, takes this server out of the cluster and stops
	// it (POST /internal/self/leave, `ittybit server leave`).
	LeaveSelf func(ctx context.Context) error
	// KeepAlive is how often the live feed sends a comment while no event
	// comes; 0 means 15 seconds.
	KeepAlive time.Duration
	// WriteStall is how long a response waits for its client to take
	// more of it (a page of tasks, a download, the live feed) before the
	// server drops that client and closes its connection; 0 means one
	// minute. See deadline.go.
	WriteStall time.Duration
	// Done, when closed, ends the live feeds being served (the server is
	// stopping); nil never.
	Done <-chan struct{}
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API is the HTTP handler of one control-plane node.
type API struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	limits  *limiter
	metrics *httpMetrics
	proxy   *forwarder
	// batches forwards a follower's creates to the leader, many to a
	// request; nil without a node token.
	batches *forwardBatches
	// policy is what POST /tasks accepts of inputs and outputs.
	policy encoders.Policy
	// sender checks webhook endpoint URLs.
	sender *webhooks.Sender
	// patterns are the public routes, as registered.
	patterns []string
	// table is every route, with who may call it.
	table []Route
}

// Auth says which credential a route takes.
type Auth string

// The credentials of routes.
const (
	// AuthNone: anyone (health, readiness, the OpenAPI document, metrics).
	AuthNone Auth = "none"
	// AuthAPIKey: an API key (the task API).
	AuthAPIKey Auth = "api_key"
	// AuthNodeToken: a node token (agents and servers).
	AuthNodeToken Auth = "node_token"
	// AuthSigned: a signature in the URL (/files/), no bearer credential.
	AuthSigned Auth = "signed"
	// AuthSession: a console session's cookie; without one, the console
	// sends the browser to sign in (its pages).
	AuthSession Auth = "session"
)

// Route is one registered route: its ServeMux pattern and who may call it.
type Route struct {
	Pattern string
	Auth    Auth
}

// Routes lists every route the API serves, in registration order. Every
// route is registered through it, so a test that walks this list covers
// every route there is.
func (a *API) Routes() []Route { return append([]Route(nil), a.table...) }

// New returns the API handler.
func New(cfg Config) *API {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = 15 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = defaultReadTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.WriteStall == 0 {
		cfg.WriteStall = defaultWriteStall
	}
	if cfg.WebhookSender == nil {
		cfg.WebhookSender = &webhooks.Sender{AllowPrivate: cfg.AllowPrivateInputs}
	}
	if cfg.Keys == nil {
		cfg.Keys = &Keys{}
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "httpapi"), mux: http.NewServeMux(), sender: cfg.WebhookSender}
	if !cfg.AllowPrivateInputs {
		a.policy.InputHost = storage.CheckInputHost
	}
	a.limits = newLimiter(cfg.RateLimit)
	a.metrics = newHTTPMetrics(cfg.Registry)
	a.proxy = newForwarder(cfg.Store, cfg.PeerDial, cfg.Logger)
	if cfg.NodeToken != "" {
		a.batches = newForwardBatches(a)
		if cfg.Done != nil {
			go func() {
				<-cfg.Done
				a.batches.batches.Close()
			}()
		}
	}
	a.routes()
	a.handler = a.metrics.wrap(a.mux, a.cfg.WriteStall)
	return a
}

// ServeHTTP serves a request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// NewServer returns the HTTP server for the API, with its timeouts (see
// ReadTimeout); Serve it on a listener.
func (a *API) NewServer() *http.Server {
	return &http.Server{Handler: a, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: a.cfg.ReadTimeout, IdleTimeout: 2 * time.Minute}
}

// Handle adds a route served by h, outside the API's bearer credentials:
// auth is AuthNone (/metrics) or AuthSigned (/files/, which checks its
// own signatures).
func (a *API) Handle(pattern string, auth Auth, h http.Handler) {
	if auth != AuthNone && auth != AuthSigned && auth != AuthSession {
		panic("httpapi: Handle takes AuthNone, AuthSigned or AuthSession routes; " + string(auth) + " routes are the API's own")
	}
	a.register(pattern, auth, h)
}

// routes lists every route in one place.
func (a *API) routes() {
	// Public task API: API keys only, answered by the leader.
	read, write, admin := api.ScopeTasksRead, api.ScopeTasksWrite, api.ScopeAdmin
	a.route("POST /tasks", AuthAPIKey, a.need(write, a.leaderOr(a.createTask, a.createTaskAway)))
	a.route("GET /tasks", AuthAPIKey, a.need(read, a.leader(a.listTasks)))
	a.route("GET /tasks/{id}", AuthAPIKey, a.need(read, a.leader(a.getTask)))
	a.route("POST /tasks/{id}/cancel", AuthAPIKey, a.need(write, a.leader(a.cancelTask)))
	// Other methods on these paths: 405 with the Allow header HTTP
	// requires, from the routes above.
	// Events: answered by any node, from its own copy of the log.
	a.route("GET /events", AuthAPIKey, a.need(read, a.handle(a.listEvents)))
	a.route("GET /events/stream", AuthAPIKey, a.need(read, a.handle(a.streamEvents)))
	// Webhook endpoints: answered by the leader.
	a.route("POST /webhooks", AuthAPIKey, a.need(admin, a.leader(a.createWebhook)))
	a.route("GET /webhooks", AuthAPIKey, a.need(admin, a.leader(a.listWebhooks)))
	a.route("GET /webhooks/{id}", AuthAPIKey, a.need(admin, a.leader(a.getWebhook)))
	a.route("PATCH /webhooks/{id}", AuthAPIKey, a.need(admin, a.leader(a.updateWebhook)))
	a.route("DELETE /webhooks/{id}", AuthAPIKey, a.need(admin, a.leader(a.deleteWebhook)))
	a.route("POST /webhooks/{id}/rotate", AuthAPIKey, a.need(admin, a.leader(a.rotateWebhook)))
	a.route("POST /webhooks/{id}/test", AuthAPIKey, a.need(admin, a.leader(a.testWebhook)))
	a.route("GET /webhooks/{id}/deliveries", AuthAPIKey, a.need(admin, a.leader(a.listDeliveries)))
	a.route("POST /webhooks/{id}/deliveries/{delivery}/retry", AuthAPIKey, a.need(admin, a.leader(a.retryDelivery)))
	// Projects (the operator's) and their keys: answered by the leader.
	a.route("POST /projects", AuthAPIKey, a.need(scopeOperator, a.leader(a.createProject)))
	a.route("GET /projects", AuthAPIKey, a.need(admin, a.leader(a.listProjects)))
	a.route("GET /projects/{id}", AuthAPIKey, a.need(admin, a.leader(a.getProject)))
	a.route("POST /keys", AuthAPIKey, a.need(admin, a.leader(a.createKey)))
	a.route("GET /keys", AuthAPIKey, a.need(admin, a.leader(a.listKeys)))
	a.route("GET /keys/{id}", AuthAPIKey, a.need(admin, a.leader(a.getKey)))
	a.route("DELETE /keys/{id}", AuthAPIKey, a.need(admin, a.leader(a.revokeKey)))
	a.route("POST /connections", AuthAPIKey, a.need(admin, a.leader(a.createConnection)))
	a.route("GET /connections", AuthAPIKey, a.need(admin, a.leader(a.listConnections)))
	a.route("GET /connections/{id}", AuthAPIKey, a.need(admin, a.leader(a.getConnection)))
	a.route("PATCH /connections/{id}", AuthAPIKey, a.need(admin, a.leader(a.updateConnection)))
	a.route("DELETE /connections/{id}", AuthAPIKey, a.need(admin, a.leader(a.deleteConnection)))
	// The fleet at a glance (every project's tasks): answered by the
	// leader, to an operator's key.
	a.route("GET /fleet", AuthAPIKey, a.need(scopeOperator, a.leader(a.fleet)))
	for _, p := range []string{"/tasks", "/tasks/{id}", "/tasks/{id}/cancel", "/events", "/events/stream", "/fleet",
		"/webhooks", "/webhooks/{id}", "/webhooks/{id}/rotate", "/webhooks/{id}/test", "/webhooks/{id}/deliveries", "/webhooks/{id}/deliveries/{delivery}/retry",
		"/projects", "/projects/{id}", "/keys", "/keys/{id}", "/connections", "/connections/{id}"} {
		a.mux.Handle(p, a.handle(methodNotAllowed(a.allowed(p))))
	}

	a.route("GET /healthz", AuthNone, a.handle(a.healthz))
	a.route("GET /readyz", AuthNone, a.handle(a.readyz))
	a.route("GET /openapi.json", AuthNone, a.handle(a.openapi))

	// Internal routes: node tokens only; not in the public document.
	a.register("POST /internal/join", AuthNodeToken, a.leader(a.join))
	a.register("POST /internal/tasks/batch", AuthNodeToken, a.handle(a.createBatch))
	a.register("POST /internal/leave", AuthNodeToken, a.leader(a.leave))
	a.register("GET /internal/peer", AuthNodeToken, a.handle(a.peer))
	a.register("POST /internal/self/leave", AuthNodeToken, a.handle(a.leaveSelf))
	a.register("GET /internal/state", AuthNodeToken, a.handle(a.localState))
	if a.cfg.Scheduler != nil {
		a.register("POST /internal/nodes", AuthNodeToken, a.leader(a.registerNode))
		a.register("GET /internal/nodes", AuthNodeToken, a.leader(a.listNodes))
		a.register("POST /internal/nodes/{name}/heartbeat", AuthNodeToken, a.leader(a.heartbeat))
		a.register("GET /internal/nodes/{name}/assignments", AuthNodeToken, a.leader(a.assignments))
		a.register("POST /internal/nodes/{name}/drain", AuthNodeToken, a.leader(a.drainNode))
		a.register("POST /internal/steps/{id}/report", AuthNodeToken, a.leader(a.reportStep))
	}

	a.mux.Handle("/", a.handle(notFound))
}

// register serves h on pattern behind the credential auth names, and
// records the route. Every route goes through here (or route, for the
// public ones), so Routes lists them all.
func (a *API) register(pattern string, auth Auth, h http.Handler) {
	switch auth {
	case AuthAPIKey:
		h = a.apiKey(h)
	case AuthNodeToken:
		h = a.nodeToken(h)
	case AuthSession:
		h = a.session(h)
	case AuthNone, AuthSigned:
	default:
		panic("httpapi: unknown auth " + string(auth))
	}
	a.table = append(a.table, Route{Pattern: pattern, Auth: auth})
	a.mux.Handle(pattern, h)
}

// allowed lists the methods of the public routes on path, for Allow: GET
// routes answer HEAD too.
func (a *API) allowed(path string) string {
	var methods []string
	for _, p := range a.patterns {
		method, pp, _ := strings.Cut(p, " ")
		if pp != path {
			continue
		}
		methods = append(methods, method)
		if method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
	}
	sort.Strings(methods)
	return strings.Join(methods, ", ")
}

// route registers a public route; openapi_test.go checks that the public
// routes and the OpenAPI document list the same operations.
func (a *API) route(pattern string, auth Auth, h http.Handler) {
	a.patterns = append(a.patterns, pattern)
	a.register(pattern, auth, h)
}
