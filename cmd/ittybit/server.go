package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/agent"
	"github.com/ittybit-oss/ittybit/controlplane/server"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/internal/seal"
	"github.com/ittybit-oss/ittybit/steps"
	"github.com/ittybit-oss/ittybit/storage"
)

// defaultEventRetention is how long a server keeps events: 30 days, as
// Stripe's events API.
const defaultEventRetention = 30 * 24 * time.Hour

// defaultEventLimit bounds the events a server keeps in memory (each
// holds the task as it was: about 1.5 KiB): the newest 50,000, fewer than
// 30 days' on a busy cluster. A cursor before them answers 410.
const defaultEventLimit = 50000

// defaultTaskRetention is how long a finished task stays in the servers'
// memory before it retires to the archive in managed storage.
const defaultTaskRetention = 30 * 24 * time.Hour

// taskRetentionUsage is the help of --task-retention.
const taskRetentionUsage = "how long a finished task stays in memory; then it moves to the archive in managed storage, still readable by id and with GET /tasks?archived=true (0: keep every task in memory)"

func newServerCmd(stderr io.Writer) *cobra.Command {
	var (
		configPath             string
		f                      serverFile
		rateLimit              float64
		splitSeconds, splitMin float64
		eventRetention         time.Duration
		eventLimit             int
		taskRetention          time.Duration
		timing                 schedTiming
	)
	cmd := &cobra.Command{
		Use:   "server [--config FILE]",
		Short: "Run one control-plane node of an ittybit cluster",
		Long: `Run one control-plane node. Either start every server the same way, with
--bootstrap-expect N and --join naming the others (URLs, or a DNS name such
as a Kubernetes headless service: dns://NAME:PORT, dns+srv://NAME): they
find each other and form one cluster once N are present. Or start the first
with --bootstrap and the others with --join http://<a node>:<port>. A
restarted node rejoins from its data folder. Flags override the environment
(ITTYBIT_<FLAG>, e.g. ITTYBIT_BOOTSTRAP_EXPECT=3), which overrides the
config file.

API keys and node tokens: the config file lists their SHA-256 hashes
(api_keys, node_tokens); $ITTYBIT_API_KEY and $ITTYBIT_NODE_TOKEN, when set,
are accepted too. The node token also authenticates joins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd); err != nil {
				return err
			}
			file := serverFile{HTTP: "127.0.0.1:8080", Raft: "127.0.0.1:9090", Data: "data"}
			if configPath != "" {
				if err := loadYAML(configPath, &file); err != nil {
					return usageError{err}
				}
			}
			fl := cmd.Flags()
			override := func(name string, dst *string, v string) {
				if fl.Changed(name) {
					*dst = v
				}
			}
			override("node-id", &file.NodeID, f.NodeID)
			override("http", &file.HTTP, f.HTTP)
			override("http-advertise", &file.HTTPAdvertise, f.HTTPAdvertise)
			override("raft", &file.Raft, f.Raft)
			override("raft-advertise", &file.RaftAdvertise, f.RaftAdvertise)
			override("data", &file.Data, f.Data)
			override("log-level", &file.LogLevel, f.LogLevel)
			override("storage", &file.Storage, f.Storage)
			if fl.Changed("bootstrap") {
				file.Bootstrap = f.Bootstrap
			}
			if fl.Changed("join") {
				file.Join = f.Join
			}
			if fl.Changed("bootstrap-expect") {
				file.BootstrapExpect = f.BootstrapExpect
			}
			if fl.Changed("leave-on-terminate") {
				file.LeaveOnTerminate = f.LeaveOnTerminate
			}
			override("dns-server", &file.DNSServer, f.DNSServer)
			if fl.Changed("allow-private-inputs") {
				file.AllowPrivateInputs = f.AllowPrivateInputs
			}
			if fl.Changed("rate-limit") {
				file.RateLimit = &rateLimit
			}
			override("seal-key-file", &file.SealKeyFile, f.SealKeyFile)
			if fl.Changed("fleet-bucket") {
				file.FleetBuckets = f.FleetBuckets
			}
			if fl.Changed("queue-metrics-projects") {
				file.QueueMetricsProjects = f.QueueMetricsProjects
			}
			if fl.Changed("split-seconds") {
				file.SplitSeconds = &splitSeconds
			}
			if fl.Changed("split-min-seconds") {
				file.SplitMinSeconds = &splitMin
			}
			if fl.Changed("event-retention") {
				file.EventRetention = &eventRetention
			}
			if fl.Changed("event-limit") {
				file.EventLimit = &eventLimit
			}
			if fl.Changed("task-retention") {
				file.TaskRetention = &taskRetention
			}
			return runServer(cmd, file, timing, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML config file (see configs/server.yaml)")
	fl.StringVar(&f.NodeID, "node-id", "", "this node's id, stable across restarts (default: the host name)")
	fl.StringVar(&f.HTTP, "http", "127.0.0.1:8080", "API listen address")
	fl.StringVar(&f.HTTPAdvertise, "http-advertise", "", "API address other nodes use (default: the address bound; bound to 0.0.0.0, this host's first private IPv4 address)")
	fl.StringVar(&f.Raft, "raft", "127.0.0.1:9090", "Raft listen address")
	fl.StringVar(&f.RaftAdvertise, "raft-advertise", "", "Raft address other nodes use (default: the address bound; bound to 0.0.0.0, this host's first private IPv4 address)")
	fl.StringVar(&f.Data, "data", "data", "data folder (Raft log in wal/, snapshots)")
	fl.BoolVar(&f.Bootstrap, "bootstrap", false, "form a new cluster with this node (first node only)")
	fl.StringArrayVar(&f.Join, "join", nil, "a server to join or to form the cluster with (repeatable): http://HOST:PORT, dns://NAME:PORT (every A/AAAA address of NAME) or dns+srv://NAME (its SRV records)")
	fl.IntVar(&f.BootstrapExpect, "bootstrap-expect", 0, "form a cluster of this many voters once that many servers found through --join have none (start every server the same way); 0: --bootstrap or --join decide")
	fl.BoolVar(&f.LeaveOnTerminate, "leave-on-terminate", false, "on SIGTERM, leave the cluster (hand leadership off, leave the voters) before stopping: for scaling down, not for restarts")
	fl.StringVar(&f.DNSServer, "dns-server", "", "look --join's DNS names up at this DNS server (HOST:PORT, e.g. Consul's 127.0.0.1:8600) instead of the system's")
	fl.BoolVar(&f.AllowPrivateInputs, "allow-private-inputs", false, "accept inputs on loopback, private and link-local addresses")
	fl.Float64Var(&rateLimit, "rate-limit", 100, "requests per second per API key (burst twice that); 0 turns limits off")
	fl.StringVar(&f.SealKeyFile, "seal-key-file", "", "file of the keys that seal S3 connections' secrets, one a line, the first sealing (mode 600; every server the same); $ITTYBIT_SEAL_KEY gives them comma-separated instead")
	fl.IntVar(&f.QueueMetricsProjects, "queue-metrics-projects", 0, "label the queue's depth by project (ittybit_queue_depth_by_project) for this many projects, those with the most queued, the rest as other; 0: no project label")
	fl.StringArrayVar(&f.FleetBuckets, "fleet-bucket", nil, "a bucket the fleet's own S3 identity serves to every project, without a connection (repeatable)")
	fl.Float64Var(&splitSeconds, "split-seconds", 30, "split a long video task into parts of about this many seconds, encoded on several agents and stitched (0: never; at least 2)")
	fl.Float64Var(&splitMin, "split-min-seconds", 120, "the shortest source --split-seconds splits (at least 10)")
	fl.DurationVar(&eventRetention, "event-retention", defaultEventRetention, "how long events are kept for GET /events and the live feed (0: forever)")
	fl.IntVar(&eventLimit, "event-limit", defaultEventLimit, "the most events kept (the oldest go first; each holds its task as it was, about 1.5 KiB of memory); 0: no bound")
	fl.DurationVar(&taskRetention, "task-retention", defaultTaskRetention, taskRetentionUsage)
	fl.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.Storage, "storage", "", "managed storage: a folder or s3://bucket/prefix (default DATA/files)")
	timing.flags(cmd)
	cmd.AddCommand(newServerLeaveCmd(), newServerRemoveCmd())
	return cmd
}

// schedTiming holds the scheduler's liveness timing, and the fault tests'
// peer proxy. The flags are hidden: the defaults suit fleets; tests
// shorten them.
type schedTiming struct {
	minTTL, grace, failover, stall time.Duration
	stragglerFactor                float64
	pprof, peerProxy               string
	webhookDelays                  []time.Duration
	webhookTimeout                 time.Duration
	queueFIFO                      bool
}

func (t *schedTiming) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&t.minTTL, "min-heartbeat-ttl", 0, "shortest time without heartbeats before an agent is down (default 10s)")
	fl.DurationVar(&t.grace, "heartbeat-grace", 0, "extra time before an agent is declared down (default 5s)")
	fl.DurationVar(&t.failover, "failover-ttl", 0, "heartbeat TTL right after a leader change (default 30s)")
	fl.DurationVar(&t.stall, "stall-timeout", 0, "fail a running step without progress for this long (default 10m)")
	fl.Float64Var(&t.stragglerFactor, "straggler-factor", 0, "start a backup copy of a part that has run this many times the median of its step's parts done, on an idle agent (default 2; below 0 never)")
	fl.StringVar(&t.pprof, "pprof", "", "serve Go's profiler on this address")
	fl.StringVar(&t.peerProxy, "peer-proxy", "", "send Raft and server-to-server HTTP through this HTTP CONNECT proxy (host:port); the fault tests cut links with it")
	fl.DurationSliceVar(&t.webhookDelays, "webhook-retry-delays", nil, "the webhook retry schedule, comma-separated (default 5s,5m,30m,2h,5h,10h,10h); the first is also the least delay after a 429 or a timeout")
	fl.DurationVar(&t.webhookTimeout, "webhook-timeout", 0, "how long a webhook receiver has to answer (default 15s)")
	fl.BoolVar(&t.queueFIFO, "queue-fifo", false, "serve ready steps first come, first served, whatever their priority and project (the fairness benchmark's baseline)")
	for _, n := range []string{"min-heartbeat-ttl", "heartbeat-grace", "failover-ttl", "stall-timeout", "straggler-factor", "pprof", "peer-proxy", "webhook-retry-delays", "webhook-timeout", "queue-fifo"} {
		_ = fl.MarkHidden(n)
	}
}

func (t schedTiming) apply(cfg *server.Config) {
	cfg.MinHeartbeatTTL, cfg.HeartbeatGrace, cfg.FailoverTTL, cfg.StallTimeout = t.minTTL, t.grace, t.failover, t.stall
	cfg.PeerProxy, cfg.StragglerFactor = t.peerProxy, t.stragglerFactor
	cfg.WebhookDelays, cfg.WebhookTimeout = t.webhookDelays, t.webhookTimeout
	cfg.QueueFIFO = t.queueFIFO
	if len(t.webhookDelays) > 0 {
		cfg.WebhookThrottle = t.webhookDelays[0]
	}
}

func runServer(cmd *cobra.Command, f serverFile, timing schedTiming, stderr io.Writer) error {
	tuneGC()
	level, err := parseLevel(f.LogLevel)
	if f.LogLevel == "" {
		level, err = slog.LevelInfo, nil
	}
	if err != nil {
		return usageError{fmt.Errorf("invalid_option: --log-level %q: accepted: debug, info, warn, error", f.LogLevel)}
	}
	logs := newServerLog(stderr, level)
	logger := logs.logger
	defer logs.lines.Flush()
	if f.NodeID == "" {
		f.NodeID, _ = os.Hostname()
	}
	rate := 100.0
	if f.RateLimit != nil {
		rate = *f.RateLimit
	}
	split, splitMin := 30.0, 120.0
	if f.SplitSeconds != nil {
		split = *f.SplitSeconds
	}
	if f.SplitMinSeconds != nil {
		splitMin = *f.SplitMinSeconds
	}
	if split != 0 && split < encoders.MinPartSeconds || split < 0 {
		return usageError{fmt.Errorf("invalid_option: --split-seconds %g: accepted: 0 (never split) or %d and more", split, encoders.MinPartSeconds)}
	}
	if splitMin < steps.MinCountFramesFrom {
		return usageError{fmt.Errorf("invalid_option: --split-min-seconds %g: accepted: %g and more (the agents count the frames of sources that long)", splitMin, steps.MinCountFramesFrom)}
	}
	retention := defaultEventRetention
	if f.EventRetention != nil {
		retention = *f.EventRetention
	}
	if retention < 0 {
		return usageError{fmt.Errorf("invalid_option: --event-retention %s: accepted: 0 (keep every event) or a positive duration such as 720h", retention)}
	}
	eventLimit := defaultEventLimit
	if f.EventLimit != nil {
		eventLimit = *f.EventLimit
	}
	if eventLimit < 0 || eventLimit > 0 && eventLimit < 1000 {
		return usageError{fmt.Errorf("invalid_option: --event-limit %d: accepted: 0 (no bound) or 1000 and more", eventLimit)}
	}
	taskRetention := defaultTaskRetention
	if f.TaskRetention != nil {
		taskRetention = *f.TaskRetention
	}
	if taskRetention < 0 {
		return usageError{fmt.Errorf("invalid_option: --task-retention %s: accepted: 0 (keep every task) or a positive duration such as 720h", taskRetention)}
	}
	cfg := server.Config{
		SplitSeconds: split, SplitMinSeconds: splitMin, EventRetention: retention, EventLimit: eventLimit, TaskRetention: taskRetention,
		NodeID: f.NodeID, HTTPAddr: f.HTTP, HTTPAdvertise: f.HTTPAdvertise, RaftAddr: f.Raft, RaftAdvertise: f.RaftAdvertise,
		DataDir: f.Data, Bootstrap: f.Bootstrap, Join: f.Join, APIKeyHashes: f.APIKeys, NodeTokenHashes: f.NodeTokens,
		JoinToken: f.NodeToken, AllowPrivateInputs: f.AllowPrivateInputs, RateLimit: rate, Logger: logger, LogBurst: logs.lines, LogHandler: logs.handlerTo,
	}
	if k := os.Getenv("ITTYBIT_API_KEY"); k != "" {
		cfg.APIKeys = append(cfg.APIKeys, k)
	}
	if t := os.Getenv("ITTYBIT_NODE_TOKEN"); t != "" {
		cfg.NodeTokens = append(cfg.NodeTokens, t)
		if cfg.JoinToken == "" {
			cfg.JoinToken = t
		}
	}
	if len(cfg.APIKeys)+len(cfg.APIKeyHashes) == 0 {
		logger.Warn("no API key is configured: every task request will be refused; set ITTYBIT_API_KEY or api_keys in the config file")
	}
	switch k := os.Getenv("ITTYBIT_SEAL_KEY"); {
	case k != "" && f.SealKeyFile != "":
		return usageError{errors.New("invalid_option: both $ITTYBIT_SEAL_KEY and --seal-key-file are set: accepted: one of them")}
	case k != "":
		if cfg.Sealer, err = seal.Parse(k); err != nil {
			return usageError{fmt.Errorf("invalid_option: $ITTYBIT_SEAL_KEY: %w", err)}
		}
	case f.SealKeyFile != "":
		if cfg.Sealer, err = seal.ReadFile(f.SealKeyFile); err != nil {
			return usageError{fmt.Errorf("invalid_option: --seal-key-file: %w", err)}
		}
	}
	if cfg.Sealer != nil {
		logger.Info("S3 connections are sealed", "keys", cfg.Sealer.KeyIDs())
	}
	for _, b := range f.FleetBuckets {
		if b == "" || strings.ContainsAny(b, "/ ") {
			return usageError{fmt.Errorf("invalid_option: --fleet-bucket %q: accepted: a bucket name", b)}
		}
	}
	cfg.FleetBuckets = f.FleetBuckets
	if f.QueueMetricsProjects < 0 || f.QueueMetricsProjects > 1000 {
		return usageError{fmt.Errorf("invalid_option: --queue-metrics-projects %d: accepted: 0 (no project label) to 1000", f.QueueMetricsProjects)}
	}
	cfg.QueueMetricProjects = f.QueueMetricsProjects
	if (len(cfg.Join) > 0 || f.BootstrapExpect > 0 || f.LeaveOnTerminate) && cfg.JoinToken == "" {
		return usageError{errors.New("invalid_option: --join, --bootstrap-expect and --leave-on-terminate need a node token: set ITTYBIT_NODE_TOKEN or node_token in the config file")}
	}
	if _, err := discover.ParseAll(cfg.Join); err != nil {
		return usageError{fmt.Errorf("invalid_option: --join %w", err)}
	}
	if f.BootstrapExpect < 0 || f.BootstrapExpect > 0 && f.Bootstrap {
		return usageError{fmt.Errorf("invalid_option: --bootstrap-expect %d: accepted: 1 or more, and not with --bootstrap", f.BootstrapExpect)}
	}
	if f.BootstrapExpect > 1 && len(cfg.Join) == 0 {
		return usageError{fmt.Errorf("invalid_option: --bootstrap-expect %d needs --join to find the other servers: %s", f.BootstrapExpect, discover.Accepted)}
	}
	cfg.BootstrapExpect = f.BootstrapExpect
	cfg.Resolver = discover.NewResolver(f.DNSServer)
	if cfg.AllowPrivateInputs {
		logger.Warn("inputs on loopback and private networks are allowed (--allow-private-inputs)")
	}
	timing.apply(&cfg)
	stopPprof, err := servePprof(timing.pprof, logger)
	if err != nil {
		return err
	}
	defer stopPprof()
	spec := f.Storage
	if spec == "" {
		spec = filepath.Join(f.Data, "files")
	}
	managed, err := storage.OpenManaged(cmd.Context(), spec, storage.S3Config{Endpoint: f.S3.Endpoint, Region: f.S3.Region, PathStyle: f.S3.PathStyle})
	if err != nil {
		return err
	}
	cfg.Storage = managed
	srv, err := server.Open(cfg)
	if err != nil {
		return err
	}
	select {
	case err := <-srv.Fatal():
		if server.Left(err) {
			logger.Info("left the cluster: stopping")
			return srv.Close()
		}
		_ = srv.Close()
		return err
	case <-cmd.Context().Done():
	}
	logger.Info("shutting down")
	if f.LeaveOnTerminate {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := srv.Leave(ctx); err != nil {
			logger.Warn("leave the cluster on terminate", "err", err)
		}
		cancel()
	}
	return srv.Close()
}

func newDevCmd(stdout, stderr io.Writer) *cobra.Command {
	var httpAddr, dataDir string
	var fetch agentFile
	var taskRetention time.Duration
	cmd := &cobra.Command{
		Use:   "dev [--http ADDR] [--data DIR]",
		Short: "Run the embedded default: a one-node control plane with its own agent and storage",
		Long: `Run everything in one process: a single-node Raft control plane and the
task API on ADDR. The API key is $ITTYBIT_API_KEY, or one generated on first
start, printed once, and remembered (as a hash) in DIR. Inputs on loopback
and private networks are allowed here, and nowhere else by default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if taskRetention < 0 {
				return usageError{fmt.Errorf("invalid_option: --task-retention %s: accepted: 0 (keep every task) or a positive duration such as 720h", taskRetention)}
			}
			return runDev(cmd, httpAddr, dataDir, taskRetention, fetch, stdout, stderr)
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http", "127.0.0.1:8080", "API listen address")
	cmd.Flags().StringVar(&dataDir, "data", "data", "data folder")
	cmd.Flags().DurationVar(&taskRetention, "task-retention", defaultTaskRetention, taskRetentionUsage)
	fetch.fetchFlags(cmd.Flags())
	return cmd
}

// runDev runs the embedded default; fetch holds the embedded agent's
// download limits.
func runDev(cmd *cobra.Command, httpAddr, dataDir string, taskRetention time.Duration, fetch agentFile, stdout, stderr io.Writer) error {
	tuneGC()
	logs := newServerLog(stderr, slog.LevelInfo)
	logger := logs.logger
	defer logs.lines.Flush()
	ctx := cmd.Context()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	managed, err := storage.OpenManaged(ctx, filepath.Join(dataDir, "files"), storage.S3Config{})
	if err != nil {
		return err
	}
	// The embedded agent's token lives only in this process.
	nodeToken := randomToken("node_")
	reg := prometheus.NewRegistry()
	reg.MustRegister(server.GoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The readiness check runs on the server's goroutines while the agent
	// is still being built here.
	var embedded atomic.Pointer[agent.Agent]
	cfg := server.Config{
		NodeID: "dev", HTTPAddr: httpAddr, EventRetention: defaultEventRetention, EventLimit: defaultEventLimit, TaskRetention: taskRetention,
		RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dataDir, "raft"),
		Bootstrap: true, AllowPrivateInputs: true, Logger: logger, LogBurst: logs.lines, LogHandler: logs.handlerTo, Storage: managed, Registry: reg,
		NodeTokens: []string{nodeToken},
		Ready: func() error {
			if ag := embedded.Load(); ag == nil || !ag.Registered() {
				return errors.New("the embedded agent has not registered yet")
			}
			return nil
		},
	}
	key, generated, err := devAPIKey(dataDir)
	if err != nil {
		return err
	}
	if key != "" {
		cfg.APIKeys = []string{key}
	} else {
		h, err := os.ReadFile(filepath.Join(dataDir, "api_key.sha256"))
		if err != nil {
			return fmt.Errorf("read API key hash: %w", err)
		}
		cfg.APIKeyHashes = []string{strings.TrimSpace(string(h))}
	}
	logger.Warn("dev mode: inputs on loopback and private networks are allowed")
	srv, err := server.Open(cfg)
	if err != nil {
		return err
	}
	acfg, cleanup, err := agentConfig(ctx, agentFile{
		Servers: []string{srv.URL()}, Name: "dev", WorkDir: filepath.Join(dataDir, "work"), Slots: 2,
		Storage: filepath.Join(dataDir, "files"), AllowPrivateInputs: true,
		MaxInputBytes: fetch.MaxInputBytes, FetchTimeout: fetch.FetchTimeout, FetchIdleTimeout: fetch.FetchIdleTimeout,
	}, nodeToken, reg, logger)
	if err != nil {
		srv.Close()
		return err
	}
	defer cleanup()
	acfg.Managed = managed
	ag, err := agent.New(acfg)
	if err != nil {
		srv.Close()
		return err
	}
	embedded.Store(ag)
	fmt.Fprintf(stdout, "ittybit dev: API on %s (data in %s)\n", srv.URL(), dataDir)
	if generated {
		fmt.Fprintf(stdout, "\nYour API key (shown once; only its hash is kept in %s):\n\n    export ITTYBIT_API_KEY=%s\n\n", dataDir, key)
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(ctx) }()
	<-ctx.Done()
	logger.Info("shutting down")
	// The agent first: it drains through the server.
	aerr := <-agentDone
	return errors.Join(aerr, srv.Close())
}

func randomToken(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// devAPIKey returns $ITTYBIT_API_KEY, or on first start a new key whose
// hash it writes to DIR/api_key.sha256. On later starts without the
// variable it returns "" and the stored hash is used.
func devAPIKey(dir string) (key string, generated bool, err error) {
	if k := os.Getenv("ITTYBIT_API_KEY"); k != "" {
		return k, false, nil
	}
	path := filepath.Join(dir, "api_key.sha256")
	if _, err := os.Stat(path); err == nil {
		return "", false, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	key = "itty_" + hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(hashKey(key)+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write API key hash: %w", err)
	}
	return key, true, nil
}

// newServerLeaveCmd is `ittybit server leave`: a server leaves the
// cluster and stops.
func newServerLeaveCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "leave [--server URL]",
		Short: "Take a server out of its cluster, then stop it",
		Long: `Ask a server (by default the one on this machine) to leave its cluster:
it hands leadership off if it leads, is removed from the voters, and stops.
The cluster then needs a quorum of the servers that remain. Uses the node
token ($ITTYBIT_NODE_TOKEN). To restart a server, stop it instead: a
stopped server stays a voter and rejoins with its data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := postInternal(cmd.Context(), addr, "/internal/self/leave", nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s left the cluster and is stopping\n", out["node_id"])
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "server", "http://127.0.0.1:8080", "the server that leaves")
	return cmd
}

// newServerRemoveCmd is `ittybit server remove NODE_ID`: take a server
// that is gone (or about to go) out of the voters.
func newServerRemoveCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "remove NODE_ID [--server URL]",
		Short: "Remove a server from the cluster's voters, through any other server",
		Long: `Remove the server NODE_ID from the cluster's voters, asking any server of
the cluster (by default the one on this machine; the leader does it). For a
server that is stopped for good: a scaled-down StatefulSet's last pod, a dead
host. A removed server started again with its data and --join rejoins, so
delete its data too. Uses the node token ($ITTYBIT_NODE_TOKEN).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]string{"node_id": args[0]})
			if _, err := postInternal(cmd.Context(), addr, "/internal/leave", body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is no longer a voter\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "server", "http://127.0.0.1:8080", "any server of the cluster")
	return cmd
}

// postInternal posts body to a server's internal route with the node
// token and returns its JSON answer.
func postInternal(ctx context.Context, addr, path string, body []byte) (map[string]string, error) {
	token := os.Getenv("ITTYBIT_NODE_TOKEN")
	if token == "" {
		return nil, usageError{errors.New("invalid_option: this needs the node token: set ITTYBIT_NODE_TOKEN")}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(addr, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, usageError{fmt.Errorf("invalid_option: --server %q: %v", addr, err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	out := map[string]string{}
	_ = json.Unmarshal(data, &out)
	return out, nil
}
