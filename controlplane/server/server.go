// Package server assembles one control-plane node: the HTTP listener, the
// Raft store, the REST API and the metrics, and joins the node to its
// cluster. cmd/ittybit and the system tests both build nodes through it.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/archive"
	"github.com/ittybit-oss/ittybit/controlplane/internal/console"
	"github.com/ittybit-oss/ittybit/controlplane/internal/httpapi"
	"github.com/ittybit-oss/ittybit/controlplane/internal/scheduler"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
	"github.com/ittybit-oss/ittybit/controlplane/internal/tunnel"
	"github.com/ittybit-oss/ittybit/controlplane/internal/webhooks"
	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/internal/seal"
	"github.com/ittybit-oss/ittybit/storage"
)

// Config configures a node. See README.md's Configuration for the
// flags that set it.
type Config struct {
	NodeID string
	// HTTPAddr is the API's listen address; HTTPAdvertise is how other
	// servers reach it (default: the address bound).
	HTTPAddr      string
	HTTPAdvertise string
	// RaftAddr is Raft's listen address; RaftAdvertise how peers reach it.
	RaftAddr      string
	RaftAdvertise string
	DataDir       string
	// Bootstrap forms a new cluster when DataDir is empty; Join lists
	// servers to join through: http://host:port, dns://NAME:PORT or
	// dns+srv://NAME (package discover).
	Bootstrap bool
	Join      []string
	// BootstrapExpect, when above 0, forms a cluster of this many voters
	// once that many servers found through Join have no cluster yet
	// (every server started the same way; see cluster.go).
	BootstrapExpect int
	// Resolver looks up Join's DNS names (nil: the system's).
	Resolver discover.Resolver
	// Credentials accepted, in plaintext or as hex SHA-256 hashes.
	APIKeys         []string
	APIKeyHashes    []string
	NodeTokens      []string
	NodeTokenHashes []string
	// JoinToken is the node token presented when joining.
	JoinToken          string
	AllowPrivateInputs bool
	// RateLimit is requests per second per API key; 0: none.
	RateLimit float64
	// Sealer seals S3 connections' secrets (every server needs the same
	// keys); nil: connections cannot be made.
	Sealer *seal.Sealer
	// FleetBuckets are the buckets the fleet's own S3 identity serves to
	// every project, without a connection.
	FleetBuckets []string
	// QueueFIFO serves ready steps first come, first served (the
	// fairness benchmark's baseline).
	QueueFIFO bool
	// QueueMetricProjects reports the queue by project for that many
	// projects (0: no project label).
	QueueMetricProjects int
	// Ready adds a readiness condition (ittybit dev: its agent registered).
	Ready func() error
	// Registry collects metrics; nil makes one (served on /metrics).
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// LogBurst is the Logger's writer, when it can gather a burst of lines
	// into one write (scheduler.Config.LogBurst).
	LogBurst scheduler.Burst
	// LogHandler makes a handler that writes to w as Logger's writes to
	// LogBurst (scheduler.Config.LogHandler).
	LogHandler func(w io.Writer) slog.Handler
	// Raft timing; zero values take the library's defaults.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// Storage is managed storage, served under /files/ with signed URLs;
	// nil serves no files.
	Storage storage.Managed
	// FilesTTL is how long a signed file URL stays valid (default 24 h).
	FilesTTL time.Duration
	// Scheduling: agent liveness and stall detection (see
	// scheduler.Config); zero values take the defaults.
	MinHeartbeatTTL time.Duration
	HeartbeatGrace  time.Duration
	FailoverTTL     time.Duration
	StallTimeout    time.Duration
	// SplitSeconds and SplitMinSeconds: a video task whose source lasts at
	// least SplitMinSeconds is split into parts of about SplitSeconds that
	// encode on several agents (see scheduler.Config); 0 SplitSeconds
	// never splits.
	SplitSeconds, SplitMinSeconds float64
	// FeedKeepAlive is how often the live feed sends a comment while no
	// event comes (0: 15 s, what clients expect; tests shorten it).
	FeedKeepAlive time.Duration
	// EventRetention is how long events are kept (0: forever).
	EventRetention time.Duration
	// EventLimit is the most events kept (0: no bound).
	EventLimit int
	// TaskRetention: finished tasks older than this retire from the
	// replicated state to the archive in Storage (package archive), which
	// must be set; 0 keeps every task.
	TaskRetention time.Duration
	// WebhookDelays replaces the webhook retry schedule and
	// WebhookThrottle the least delay after a 429 or a timeout (tests:
	// seconds, not hours); WebhookResolver the resolver webhook deliveries use
	// (tests: names that resolve to what a test says).
	WebhookDelays   []time.Duration
	WebhookThrottle time.Duration
	WebhookTimeout  time.Duration
	WebhookResolver webhooks.Resolver
	// StragglerFactor: when a part gets a backup copy (see
	// scheduler.Config); below 0, never.
	StragglerFactor float64
	// PeerProxy, when set, is an HTTP CONNECT proxy (host:port) that all
	// traffic to other servers goes through: Raft, forwarded requests,
	// joins. The fault tests cut links with it.
	PeerProxy string
}

// Server is a running control-plane node.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ln    net.Listener
	http  *http.Server
	store *store.Store
	sched *scheduler.Dispatcher
	api   *httpapi.API
	// apiMade is closed once api is set.
	apiMade chan struct{}
	reg     *prometheus.Registry

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	targets []discover.Target // Join, parsed
	fatal   chan error        // why the server must stop (Fatal)

	// Ended tasks whose leftover files are to go (dropTaskFiles).
	cleanMu   sync.Mutex
	cleanups  []cleanup
	cleanWake chan struct{}
}

// Open starts a node: it binds the HTTP port, opens the store (bootstrapping
// if asked), serves the API and, with Join, joins the cluster in the
// background until it succeeds.
func Open(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeID == "" {
		return nil, errors.New("server: a node id is required")
	}
	targets, err := discover.ParseAll(cfg.Join)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	switch {
	case cfg.BootstrapExpect < 0:
		return nil, fmt.Errorf("bootstrap-expect %d: accepted: 1 or more servers", cfg.BootstrapExpect)
	case cfg.BootstrapExpect > 0 && cfg.Bootstrap:
		return nil, errors.New("bootstrap and bootstrap-expect exclude each other: bootstrap forms a cluster of this server alone; bootstrap-expect N waits for N servers")
	case cfg.BootstrapExpect > 1 && len(targets) == 0:
		return nil, fmt.Errorf("bootstrap-expect %d needs --join, to find the other servers: %s", cfg.BootstrapExpect, discover.Accepted)
	case cfg.TaskRetention < 0:
		return nil, fmt.Errorf("task-retention %s: accepted: 0 (keep every task) or a positive duration", cfg.TaskRetention)
	case cfg.TaskRetention > 0 && cfg.Storage == nil:
		return nil, errors.New("task-retention needs managed storage, where retired tasks are archived")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = discover.NewResolver("")
	}
	keys := &httpapi.Keys{}
	for _, k := range cfg.APIKeys {
		keys.AddAPIKey(k)
	}
	for _, t := range cfg.NodeTokens {
		keys.AddNodeToken(t)
	}
	for _, h := range cfg.APIKeyHashes {
		if err := keys.AddAPIKeyHash(h); err != nil {
			return nil, fmt.Errorf("api key: %w", err)
		}
	}
	for _, h := range cfg.NodeTokenHashes {
		if err := keys.AddNodeTokenHash(h); err != nil {
			return nil, fmt.Errorf("node token: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	if err := fillAdvertise(&cfg, ln.Addr().String()); err != nil {
		ln.Close()
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(GoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	applySeconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ittybit_raft_apply_seconds",
		Help:    "Time from proposing a Raft entry to its being applied on the leader.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	var peerDial tunnel.DialFunc
	if cfg.PeerProxy != "" {
		peerDial = tunnel.Via(cfg.PeerProxy)
	}
	st, err := store.Open(store.Config{
		NodeID: cfg.NodeID, RaftAddr: cfg.RaftAddr, RaftAdvertise: cfg.RaftAdvertise,
		HTTPAddr: cfg.HTTPAdvertise, Dir: cfg.DataDir, Bootstrap: cfg.Bootstrap, Logger: cfg.Logger,
		HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout,
		LeaderLeaseTimeout: min(cfg.HeartbeatTimeout, 500*time.Millisecond),
		ApplyObserver:      func(d time.Duration) { applySeconds.Observe(d.Seconds()) },
		EventRetention:     cfg.EventRetention,
		EventLimit:         cfg.EventLimit,
		Dial:               peerDial,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ittybit_raft_leader",
		Help: "1 on the Raft leader, 0 on followers.",
	}, func() float64 {
		if st.IsLeader() {
			return 1
		}
		return 0
	})
	reg.MustRegister(applySeconds, leader)

	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "server", "node_id", cfg.NodeID), ln: ln, store: st, reg: reg,
		targets: targets, fatal: make(chan error, 1), cleanWake: make(chan struct{}, 1), apiMade: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var ended func(string)
	if cfg.Storage != nil {
		ended = s.dropTaskFiles
	}
	var access func(*api.Task, string) []api.S3Access
	var sealer httpapi.Sealer
	if cfg.Sealer != nil {
		sealer = cfg.Sealer
		warn := cfg.Logger.With("component", "connections").Warn
		access = func(t *api.Task, step string) []api.S3Access {
			return httpapi.S3Access(st.State(), sealer, t, step, warn)
		}
	}
	s.sched = scheduler.New(scheduler.Config{
		OnEnded: ended, Access: access, FIFO: cfg.QueueFIFO, MetricProjects: cfg.QueueMetricProjects,
		Store: st, MinHeartbeatTTL: cfg.MinHeartbeatTTL, HeartbeatGrace: cfg.HeartbeatGrace,
		FailoverTTL: cfg.FailoverTTL, StallTimeout: cfg.StallTimeout,
		SplitSeconds: cfg.SplitSeconds, SplitMinSeconds: cfg.SplitMinSeconds, StragglerFactor: cfg.StragglerFactor,
		Metrics: scheduler.NewMetrics(reg), Logger: cfg.Logger, LogBurst: cfg.LogBurst, LogHandler: cfg.LogHandler,
	})
	st.OnLeader(s.sched.Run)
	st.OnLeader(s.ensureSecret)
	st.OnLeader(s.ensureClusterID)
	st.OnLeader(s.watchVoters)
	sender := &webhooks.Sender{AllowPrivate: cfg.AllowPrivateInputs, Resolver: cfg.WebhookResolver, Timeout: cfg.WebhookTimeout}
	outbox := &webhooks.Outbox{Store: st, Sender: sender, Render: httpapi.EventJSON, Delays: cfg.WebhookDelays,
		Throttle: cfg.WebhookThrottle,
		Metrics:  webhooks.NewMetrics(reg), Logger: cfg.Logger.With("component", "webhooks")}
	st.OnLeader(outbox.Run)
	var arch *archive.Archive
	if cfg.TaskRetention > 0 {
		staging := filepath.Join(cfg.DataDir, "archive-staging")
		if err := os.MkdirAll(staging, 0o700); err != nil {
			st.Close()
			ln.Close()
			return nil, fmt.Errorf("archive staging folder: %w", err)
		}
		arch = archive.New(cfg.Storage, staging)
		metrics := archive.NewMetrics(reg)
		st.OnRetired(func(n int) { metrics.Retired.Add(float64(n)) })
		retirer := &archive.Retirer{Store: st, Archive: arch, Retention: cfg.TaskRetention,
			Metrics: metrics, Logger: cfg.Logger.With("component", "archive")}
		st.OnLeader(retirer.Run)
	}
	if cfg.FilesTTL == 0 {
		cfg.FilesTTL = 24 * time.Hour
		s.cfg.FilesTTL = cfg.FilesTTL
	}
	apiCfg := httpapi.Config{
		Store: st, Scheduler: s.sched, Keys: keys, AllowPrivateInputs: cfg.AllowPrivateInputs, RateLimit: cfg.RateLimit,
		Ready: cfg.Ready, Registry: reg, Logger: cfg.Logger, PeerDial: peerDial, Done: s.ctx.Done(), WebhookSender: sender,
		NodeToken: cfg.JoinToken, Sealer: sealer, FleetBuckets: cfg.FleetBuckets,
		LeaveSelf: s.leaveAndStop, Archive: arch, KeepAlive: cfg.FeedKeepAlive,
	}
	if cfg.Storage != nil {
		apiCfg.FileURL = s.fileURL
	}
	s.api = httpapi.New(apiCfg)
	close(s.apiMade)
	if cfg.Storage != nil {
		s.api.Handle("GET /files/", httpapi.AuthSigned, http.HandlerFunc(s.serveFile))
		s.api.Handle("HEAD /files/", httpapi.AuthSigned, http.HandlerFunc(s.serveFile))
	}
	s.api.Handle("GET /metrics", httpapi.AuthNone, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	console.Register(s.api)
	s.http = s.api.NewServer()
	ctx := s.ctx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	s.wg.Go(func() { s.keepClusterID(ctx) })
	if cfg.Storage != nil {
		s.wg.Go(func() { s.cleanLoop(ctx) })
	}
	switch {
	case cfg.BootstrapExpect > 0 && !st.Member():
		s.wg.Go(func() { s.form(ctx) })
	case len(targets) > 0:
		s.wg.Go(func() { s.join(ctx) })
	}
	s.log.Info("server started", "http", ln.Addr().String(), "raft", st.RaftAddr(), "bootstrap", cfg.Bootstrap)
	return s, nil
}

// taskFilesGrace is how long after a task failed or was cancelled its
// leftover files are removed: time for its agents to stop, so that no
// upload in flight lands after.
const taskFilesGrace = 5 * time.Second

// dropTaskFiles removes, a little later, what a task that failed or was
// cancelled left in managed storage: the parts of a split step and staged
// results, which no upload step will clear. One goroutine (cleanLoop)
// works through them in the order they ended: a burst of cancels must not
// start a goroutine each (the runtime keeps every goroutine's descriptor
// once made).
func (s *Server) dropTaskFiles(taskID string) {
	s.cleanMu.Lock()
	s.cleanups = append(s.cleanups, cleanup{taskID: taskID, due: time.Now().Add(taskFilesGrace)})
	s.cleanMu.Unlock()
	select {
	case s.cleanWake <- struct{}{}:
	default:
	}
}

// cleanup is a task whose leftover files go once due.
type cleanup struct {
	taskID string
	due    time.Time
}

// cleanLoop removes the leftover files of ended tasks, each once due,
// until the server closes.
func (s *Server) cleanLoop(ctx context.Context) {
	for {
		s.cleanMu.Lock()
		var next *cleanup
		if len(s.cleanups) > 0 {
			next = &s.cleanups[0]
		}
		s.cleanMu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.cleanWake:
			}
			continue
		}
		if d := time.Until(next.due); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		for _, dir := range []string{"parts", "staging"} {
			if err := s.cfg.Storage.DeletePrefix(ctx, "tasks/"+next.taskID+"/"+dir); err != nil && ctx.Err() == nil {
				s.log.Warn("remove a finished task's leftover files", "task_id", next.taskID, "err", err)
			}
		}
		s.cleanMu.Lock()
		s.cleanups = s.cleanups[1:]
		if len(s.cleanups) == 0 {
			s.cleanups = nil // let a burst's backing array go
		}
		s.cleanMu.Unlock()
	}
}

// ensureSecret makes the cluster's file-signing secret, once, on the first
// leader: every server signs and checks /files/ URLs with it.
func (s *Server) ensureSecret(ctx context.Context) {
	if _, ok := s.store.State().Meta(metaFilesSecret); ok {
		return
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		s.log.Error("make file-signing secret", "err", err)
		return
	}
	if _, err := s.store.SetMeta(ctx, metaFilesSecret, hex.EncodeToString(b[:])); err != nil {
		s.log.Warn("record file-signing secret", "err", err)
	}
}

// signer signs with the cluster's secret, once the first leader made it.
func (s *Server) signer() (storage.Signer, bool) {
	hexSecret, ok := s.store.State().Meta(metaFilesSecret)
	if !ok {
		return storage.Signer{}, false
	}
	secret, err := hex.DecodeString(hexSecret)
	if err != nil {
		return storage.Signer{}, false
	}
	return storage.Signer{Secret: secret}, true
}

// fileURL is the signed URL of a managed file, on the host the client
// used (X-Forwarded-Host when the request was forwarded to the leader).
func (s *Server) fileURL(r *http.Request, key string) string {
	sg, ok := s.signer()
	if !ok {
		return httpapi.ManagedScheme + key
	}
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + host + sg.Path(key, time.Now().Add(s.cfg.FilesTTL))
}

// serveFile serves managed files to holders of a signed URL.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	sg, ok := s.signer()
	if !ok {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"kind":"unavailable","message":"file signing is not set up yet"}`, http.StatusServiceUnavailable)
		return
	}
	storage.FilesHandler(s.cfg.Storage, sg, time.Now).ServeHTTP(w, r)
}

// metaFilesSecret names the file-signing secret in the replicated state.
const metaFilesSecret = "files_secret"

// Scheduler returns the node's dispatcher (active while it leads).
func (s *Server) Scheduler() *scheduler.Dispatcher { return s.sched }

// Addr is the HTTP address the node listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the node's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Store returns the node's store (for the embedded default and tests).
func (s *Server) Store() *store.Store { return s.store }

// API returns the HTTP handler, to mount more routes on.
func (s *Server) API() *httpapi.API { return s.api }

// Registry returns the metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Close hands leadership to another node when this one leads, stops
// serving (finishing requests in flight, for up to 5 s, forwarded to the
// new leader), then stops the store.
func (s *Server) Close() error {
	if _, err := s.store.HandOff(); err != nil {
		s.log.Warn("stopping without a hand-off: the followers elect a leader when its heartbeats stop", "err", err)
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	herr := s.http.Shutdown(ctx)
	s.wg.Wait()
	serr := s.store.Close()
	return errors.Join(herr, serr)
}

// watchVoters runs the API's watch of which entry types the voters apply
// while this server leads (store.OnLeader), once the API is made.
func (s *Server) watchVoters(ctx context.Context) {
	select {
	case <-s.apiMade:
		s.api.WatchVoters(ctx)
	case <-ctx.Done():
	}
}
