package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ittybit-oss/ittybit/agent"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/plugins/host"
	"github.com/ittybit-oss/ittybit/storage"
)

// agentFile is the YAML config file of `ittybit agent`; flags override it.
type agentFile struct {
	Servers            []string `yaml:"servers"`
	DNSServer          string   `yaml:"dns_server"`
	Name               string   `yaml:"name"`
	WorkDir            string   `yaml:"work_dir"`
	PluginDir          string   `yaml:"plugin_dir"`
	Slots              int      `yaml:"slots"`
	Metrics            string   `yaml:"metrics"`
	Storage            string   `yaml:"storage"`
	AllowPrivateInputs bool     `yaml:"allow_private_inputs"`
	// MaxInputBytes caps a source's size (0: 10 GiB); FetchTimeout and
	// FetchIdleTimeout bound an http(s) download in all and between
	// bytes (0: one hour, one minute).
	MaxInputBytes    int64         `yaml:"max_input_bytes"`
	FetchTimeout     time.Duration `yaml:"fetch_timeout"`
	FetchIdleTimeout time.Duration `yaml:"fetch_idle_timeout"`
	// DrainTimeout is how long running steps may finish after SIGTERM
	// before they are handed back (0: 30 s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// EncodeThreads bounds the threads of one software encode (0: ffmpeg's
	// choice), to run several encodes per CPU host (see Slots).
	EncodeThreads int      `yaml:"encode_threads"`
	LogLevel      string   `yaml:"log_level"`
	NodeToken     string   `yaml:"node_token"`
	S3            s3Config `yaml:"s3"`
}

func newAgentCmd(stderr io.Writer) *cobra.Command {
	var configPath string
	var f agentFile
	cmd := &cobra.Command{
		Use:   "agent [--config FILE]",
		Short: "Run a node agent: detect encoders, take steps from the cluster, run them",
		Long: `Run a node agent. It registers with the control plane (any --server; it
fails over between them) with the encoders this host can use, takes steps,
runs them and reports. The node token is $ITTYBIT_NODE_TOKEN or node_token in
the config file. On SIGTERM it drains: no new work; running steps finish or
are handed back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd); err != nil {
				return err
			}
			file := agentFile{WorkDir: "work", Slots: 2}
			if configPath != "" {
				if err := loadYAML(configPath, &file); err != nil {
					return usageError{err}
				}
			}
			fl := cmd.Flags()
			if fl.Changed("server") {
				file.Servers = f.Servers
			}
			for name, pair := range map[string][2]*string{
				"name": {&file.Name, &f.Name}, "dns-server": {&file.DNSServer, &f.DNSServer}, "work-dir": {&file.WorkDir, &f.WorkDir}, "plugin-dir": {&file.PluginDir, &f.PluginDir},
				"metrics": {&file.Metrics, &f.Metrics}, "storage": {&file.Storage, &f.Storage}, "log-level": {&file.LogLevel, &f.LogLevel},
			} {
				if fl.Changed(name) {
					*pair[0] = *pair[1]
				}
			}
			if fl.Changed("slots") {
				file.Slots = f.Slots
			}
			if fl.Changed("encode-threads") {
				file.EncodeThreads = f.EncodeThreads
			}
			if fl.Changed("allow-private-inputs") {
				file.AllowPrivateInputs = f.AllowPrivateInputs
			}
			if fl.Changed("drain-timeout") {
				file.DrainTimeout = f.DrainTimeout
			}
			f.fetchOverride(fl, &file)
			return runAgent(cmd.Context(), file, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML config file (see configs/agent.yaml)")
	fl.StringArrayVar(&f.Servers, "server", nil, "a control-plane server, any (repeatable): http://HOST:PORT, dns://NAME:PORT (every A/AAAA address of NAME) or dns+srv://NAME (its SRV records)")
	fl.StringVar(&f.DNSServer, "dns-server", "", "look --server's DNS names up at this DNS server (HOST:PORT) instead of the system's")
	fl.StringVar(&f.Name, "name", "", "this agent's name, stable across restarts (default: the host name)")
	fl.StringVar(&f.WorkDir, "work-dir", "work", "folder for sources and results while steps run")
	fl.StringVar(&f.PluginDir, "plugin-dir", "", "folder of external encoder plugins")
	fl.IntVar(&f.Slots, "slots", 2, "steps run at once")
	fl.IntVar(&f.EncodeThreads, "encode-threads", 0, "threads of one software encode (0: ffmpeg's choice); with --slots, how a CPU host is shared")
	fl.StringVar(&f.Metrics, "metrics", "", "address to serve Prometheus /metrics on, e.g. 127.0.0.1:9101")
	fl.StringVar(&f.Storage, "storage", "", "managed storage, as the servers': a folder or s3://bucket/prefix (required)")
	fl.BoolVar(&f.AllowPrivateInputs, "allow-private-inputs", false, "fetch inputs on loopback, private and link-local addresses")
	f.fetchFlags(fl)
	fl.DurationVar(&f.DrainTimeout, "drain-timeout", 30*time.Second, "after SIGTERM, how long running steps may finish before they are handed back to the cluster")
	fl.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// fetchFlags adds the flags that bound what an agent downloads (agent and
// dev).
func (f *agentFile) fetchFlags(fl *pflag.FlagSet) {
	fl.Int64Var(&f.MaxInputBytes, "max-input-bytes", 0, "largest source accepted, in bytes (default 10 GiB); a larger one fails with input_too_large")
	fl.DurationVar(&f.FetchTimeout, "fetch-timeout", 0, "longest an http(s) download may take (default 1h)")
	fl.DurationVar(&f.FetchIdleTimeout, "fetch-idle-timeout", 0, "fail an http(s) download that sends nothing for this long (default 1m)")
}

// fetchOverride copies the fetch flags set on the command line into file.
func (f *agentFile) fetchOverride(fl *pflag.FlagSet, file *agentFile) {
	if fl.Changed("max-input-bytes") {
		file.MaxInputBytes = f.MaxInputBytes
	}
	if fl.Changed("fetch-timeout") {
		file.FetchTimeout = f.FetchTimeout
	}
	if fl.Changed("fetch-idle-timeout") {
		file.FetchIdleTimeout = f.FetchIdleTimeout
	}
}

func runAgent(ctx context.Context, f agentFile, stderr io.Writer) error {
	level, err := parseLevel(orDefault(f.LogLevel, "info"))
	if err != nil {
		return usageError{fmt.Errorf("invalid_option: --log-level %q: accepted: debug, info, warn, error", f.LogLevel)}
	}
	logger := newLogger(stderr, level)
	if len(f.Servers) == 0 {
		return usageError{errors.New("invalid_option: --server is required: the URL of a control-plane node")}
	}
	if _, err := discover.ParseAll(f.Servers); err != nil {
		return usageError{fmt.Errorf("invalid_option: --server %w", err)}
	}
	if f.Storage == "" {
		return usageError{errors.New("invalid_option: --storage is required: the managed storage the servers use (a folder or s3://bucket/prefix)")}
	}
	token := os.Getenv("ITTYBIT_NODE_TOKEN")
	if token == "" {
		token = f.NodeToken
	}
	if token == "" {
		return usageError{errors.New("invalid_option: a node token is required: set ITTYBIT_NODE_TOKEN or node_token in the config file")}
	}
	if f.Name == "" {
		f.Name, _ = os.Hostname()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg, cleanup, err := agentConfig(ctx, f, token, reg, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if f.Metrics != "" {
		stop, err := serveMetrics(f.Metrics, reg, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.AllowPrivateInputs {
		logger.Warn("inputs on loopback and private networks are allowed (--allow-private-inputs)")
	}
	return a.Run(ctx)
}

// agentConfig builds the agent's parts: storage, S3, fetcher, prober and
// encoder. cleanup releases what they hold.
func agentConfig(ctx context.Context, f agentFile, token string, reg prometheus.Registerer, logger *slog.Logger) (agent.Config, func(), error) {
	s3cfg := storage.S3Config{Endpoint: f.S3.Endpoint, Region: f.S3.Region, PathStyle: f.S3.PathStyle}
	managed, err := storage.OpenManaged(ctx, f.Storage, s3cfg)
	if err != nil {
		return agent.Config{}, nil, err
	}
	var s3 agent.S3
	if client, err := storage.NewS3(ctx, s3cfg); err == nil {
		s3 = client
	} else {
		logger.Warn("no S3 access: s3:// inputs and outputs will fail on this agent", "err", err)
	}
	if f.EncodeThreads < 0 || f.EncodeThreads > 256 {
		return agent.Config{}, nil, usageError{fmt.Errorf("invalid_option: --encode-threads %d: accepted: 0 (ffmpeg's choice) to 256", f.EncodeThreads)}
	}
	hcfg, err := hostConfig(f.PluginDir, false, io.Discard)
	if err != nil {
		return agent.Config{}, nil, err
	}
	hcfg.EncodeThreads = f.EncodeThreads
	hcfg.Logger = logger // the host adds component=plugins
	h, err := host.Open(ctx, hcfg)
	if err != nil {
		return agent.Config{}, nil, fmt.Errorf("start the encoder plugins: %w", err)
	}
	for _, c := range h.Capabilities() {
		attrs := []any{"plugin", c.Plugin, "backend", c.Backend, "codec", c.Codec, "available", c.Available, "reason", c.Reason, "device", c.Device, "max_sessions", c.MaxSessions}
		switch {
		case c.Backend != encoders.BackendSoftware:
			logger.Info("encoder", attrs...)
		case !c.Available:
			// Software is the fallback of every encode: one missing is
			// news (a build without it, ffmpeg that would not answer).
			logger.Warn("encoder", attrs...)
		}
	}
	if agent.HasNVIDIA(h.Capabilities()) {
		// NVENC/NVDEC load and sessions per GPU, read from nvidia-smi at
		// each scrape; hosts without NVIDIA GPUs never run it.
		reg.MustRegister(agent.NewGPUCollector(func(ctx context.Context) ([]detect.GPUUsage, error) {
			return detect.QueryGPUUsage(ctx, detect.Config{Timeout: 5 * time.Second})
		}, logger))
	}
	if f.MaxInputBytes < 0 || f.FetchTimeout < 0 || f.FetchIdleTimeout < 0 || f.DrainTimeout < 0 {
		h.Close()
		return agent.Config{}, nil, usageError{errors.New("invalid_option: --max-input-bytes, --fetch-timeout, --fetch-idle-timeout and --drain-timeout take positive values")}
	}
	cfg := agent.Config{
		Servers: f.Servers, Resolver: discover.NewResolver(f.DNSServer), Name: f.Name, Token: token, WorkDir: f.WorkDir, Slots: f.Slots,
		Managed: managed, S3: s3, Prober: &probe.Prober{}, MaxInputBytes: f.MaxInputBytes,
		Fetcher: storage.NewFetcher(storage.FetchConfig{
			AllowPrivate: f.AllowPrivateInputs, MaxBytes: f.MaxInputBytes, Timeout: f.FetchTimeout, IdleTimeout: f.FetchIdleTimeout,
		}),
		Encoder: h, Metrics: agent.NewMetrics(reg), Logger: logger, Version: version, DrainTimeout: f.DrainTimeout,
	}
	return cfg, func() { h.Close() }, nil
}

// serveMetrics serves /metrics on addr until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// A body sent slowly, or a scrape not read, cannot hold a connection:
	// a scrape is gathered and written at once.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
