// Package agent is the node agent: it registers with the control plane
// with what this host can encode, sends heartbeats with the progress of its
// steps, long-polls for assignments, runs the steps (probe, ingest, encode,
// upload) and reports their outcomes. On shutdown it drains: it takes no
// more work and finishes, or hands back, what it holds.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/steps"
)

// Config configures an Agent.
type Config struct {
	// Servers are control-plane servers, any of them: base URLs, or DNS
	// names (dns://NAME:PORT, dns+srv://NAME; package discover) looked up
	// again whenever every server found so far has failed.
	Servers []string
	// Resolver looks Servers' DNS names up (nil: the system's).
	Resolver discover.Resolver
	// Name identifies the agent; stable across restarts.
	Name string
	// Token is the node token.
	Token string
	// WorkDir holds sources and results while steps run.
	WorkDir string
	// Slots is how many steps run at once (default 2).
	Slots int
	// MaxInputBytes caps the size of an s3:// source (default 10 GiB);
	// http(s) sources are capped by the Fetcher, which ittybit agent
	// configures with the same value (--max-input-bytes).
	MaxInputBytes int64
	// DrainTimeout is how long a draining agent lets its steps finish
	// before handing them back (default 30 s).
	DrainTimeout time.Duration
	Managed      Managed
	S3           S3
	Fetcher      Fetcher
	Prober       Prober
	Encoder      Encoder
	Metrics      *Metrics
	Logger       *slog.Logger
	Version      string
	// HTTPClient calls the control plane; nil makes one that keeps a
	// connection open per slot besides the long-poll and heartbeats.
	HTTPClient *http.Client
}

// Agent is a running node agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	hc      *http.Client
	targets []discover.Target
	// clients and urls are the servers found (guarded by mu); resolving
	// is set while a look-up runs.
	clients   []*client.Client
	urls      []string
	resolving atomic.Bool
	// steps does the work of the steps this agent runs.
	steps *steps.Runner
	// countFrom is the leader's CountFramesFrom (guarded by mu).
	countFrom float64

	mu         sync.Mutex
	cur        int // index of the server in use
	running    map[string]*run
	registered bool
	interval   time.Duration
	// progressEvery is the heartbeat period while steps run; busy wakes
	// an idle heartbeat loop when steps arrive, so that their progress
	// (and a cancel, in the answer) need not wait out the idle period.
	progressEvery time.Duration
	busy          chan struct{}
	// received is what the agent has taken in of the leader's
	// assignments, told back on every poll and heartbeat.
	received api.Received

	// work is the context steps run in (Run's); slots bound how many run
	// at once; wg counts the steps held.
	work  context.Context
	slots chan struct{}
	wg    sync.WaitGroup
}

// run is a step the agent holds, from its assignment until its report
// is answered.
type run struct {
	a      api.Assignment
	ctx    context.Context
	cancel context.CancelFunc
	// stopReport ends the report's delivery: the leader gave the step to
	// another node.
	stopReport context.CancelFunc
	reportCtx  context.Context
	progress   api.RunningStep
	// reportingAt is when its report began to be delivered.
	reportingAt time.Time
}

// New checks cfg and returns an Agent.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Servers) == 0 || cfg.Name == "" || cfg.Token == "" {
		return nil, errors.New("agent: servers, a name and a node token are required")
	}
	if cfg.Managed == nil || cfg.Fetcher == nil || cfg.Prober == nil || cfg.Encoder == nil {
		return nil, errors.New("agent: managed storage, fetcher, prober and encoder are required")
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 2
	}
	if cfg.MaxInputBytes == 0 {
		cfg.MaxInputBytes = 10 << 30
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = discover.NewResolver("")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("create work folder: %w", err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent", "node_id", cfg.Name), running: map[string]*run{}, interval: time.Second, progressEvery: time.Second,
		slots: make(chan struct{}, cfg.Slots), busy: make(chan struct{}, 1)}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Slots + 4
		// Long-polls run up to ~10 s; forwarded ones a little longer.
		hc = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	a.hc = hc
	var err error
	if a.targets, err = discover.ParseAll(cfg.Servers); err != nil {
		return nil, fmt.Errorf("agent: server: %w", err)
	}
	if !discover.Dynamic(a.targets) {
		a.setServers(discover.Resolve(context.Background(), nil, a.targets).URLs)
	}
	a.steps = &steps.Runner{Prober: cfg.Prober, Encoder: meteredEncoder{a}, Files: nodeFiles{a}, Stitcher: stitcher{cfg.Prober}}
	a.cfg.Metrics.watch(cfg.Encoder.Capabilities, cfg.Slots)
	return a, nil
}

// Registered reports whether the leader has accepted the agent.
func (a *Agent) Registered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registered
}

// client returns the client of the server in use (nil before a DNS name
// found any).
func (a *Agent) client() *client.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.clients) == 0 {
		return nil
	}
	return a.clients[a.cur]
}

// setServers makes the servers found the ones in use, keeping the one in
// use when it is still among them.
func (a *Agent) setServers(urls []string) {
	if len(urls) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.Equal(urls, a.urls) {
		return
	}
	cur := ""
	if a.cur < len(a.urls) {
		cur = a.urls[a.cur]
	}
	a.urls, a.clients, a.cur = urls, nil, 0
	for i, u := range urls {
		a.clients = append(a.clients, client.New(u, a.cfg.Token, client.WithRetries(0), client.WithHTTPClient(a.hc)))
		if u == cur {
			a.cur = i
		}
	}
}

// resolve looks the servers' DNS names up again.
func (a *Agent) resolve(ctx context.Context) {
	if !discover.Dynamic(a.targets) || !a.resolving.CompareAndSwap(false, true) {
		return
	}
	defer a.resolving.Store(false)
	res := discover.Resolve(ctx, a.cfg.Resolver, a.targets)
	for t, err := range res.Failed {
		a.log.Warn("look the servers up", "server", t, "err", err)
	}
	a.setServers(res.URLs)
}

// failover moves to the next server after a transport error.
func (a *Agent) failover(err error) {
	var ae *api.Error
	if errors.As(err, &ae) {
		return // the server answered: it is reachable
	}
	a.mu.Lock()
	if len(a.clients) > 0 {
		a.cur = (a.cur + 1) % len(a.clients)
	}
	wrapped := a.cur == 0
	a.mu.Unlock()
	if wrapped && discover.Dynamic(a.targets) {
		// Every server found has failed: the names may answer otherwise now.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.resolve(ctx)
		}()
	}
}

// Run registers and works until ctx ends, then drains. It returns when
// every step has finished or been handed back.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return err
	}
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	a.work = work
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		a.heartbeats(hbCtx)
	}()

	for ctx.Err() == nil {
		out, err := a.client().Assignments(ctx, a.cfg.Name, 10*time.Second, a.receivedSoFar())
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			a.handleErr(ctx, "poll for assignments", err)
			continue
		}
		a.accept(out)
	}

	// Drain: no more work; finish what runs, hand back what does not end
	// in time.
	a.log.Info("draining", "running", a.runningCount())
	drainCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := a.client().DrainNode(drainCtx, a.cfg.Name); err != nil {
		a.log.Warn("tell the leader about draining", "err", err)
	}
	cancel()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.cfg.DrainTimeout):
		a.log.Warn("drain timeout: handing back unfinished steps")
		a.handBack()
		stopWork()
		<-done
	}
	stopHB()
	<-hbDone
	return nil
}

func (a *Agent) runningCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

// register announces the agent until the leader accepts it.
func (a *Agent) register(ctx context.Context) error {
	reg := api.NodeRegistration{Name: a.cfg.Name, Capabilities: a.cfg.Encoder.Capabilities(), Slots: a.cfg.Slots, Version: a.cfg.Version, Parts: true}
	wait := 200 * time.Millisecond
	for {
		if a.client() == nil {
			a.resolve(ctx)
		}
		c := a.client()
		var out *api.NodeRegistered
		err := errors.New("no server found yet: " + strings.Join(a.cfg.Servers, ", "))
		if c != nil {
			out, err = c.RegisterNode(ctx, reg)
		}
		if err == nil {
			a.mu.Lock()
			a.registered = true
			a.interval = time.Duration(out.IntervalMillis) * time.Millisecond
			a.countFrom = out.CountFramesFrom
			a.mu.Unlock()
			a.log.Info("registered", "server", a.urls[a.cur], "heartbeat_interval", a.interval)
			return nil
		}
		a.failover(err)
		a.log.Warn("register failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// handleErr reacts to a failed call: re-register when the leader lost
// track of the agent, else wait a moment (and try another server).
func (a *Agent) handleErr(ctx context.Context, what string, err error) {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Kind == ittybit.ErrUnknownNode {
		a.mu.Lock()
		a.registered = false
		a.mu.Unlock()
		if rerr := a.register(ctx); rerr == nil {
			return
		}
	}
	a.failover(err)
	a.log.Warn(what+" failed", "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(500 * time.Millisecond):
	}
}

// heartbeats reports liveness and progress until ctx ends; it stops the
// steps the leader says to stop.
func (a *Agent) heartbeats(ctx context.Context) {
	last := time.Now()
	for {
		a.mu.Lock()
		every, idle := a.interval, len(a.running) == 0
		if !idle {
			every = min(every, a.progressEvery) // progress stays fresh while working
		}
		a.mu.Unlock()
		var busy chan struct{}
		if idle {
			busy = a.busy
		}
		timer := time.NewTimer(every - time.Since(last))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-busy:
			// Work arrived while idle: beat at the working pace, counted
			// from the last beat.
			timer.Stop()
			continue
		case <-timer.C:
		}
		last = time.Now()
		a.mu.Lock()
		hb := api.Heartbeat{Received: a.received}
		for _, r := range a.running {
			rs := r.progress
			if rs.Reporting {
				rs.ReportingMillis = time.Since(r.reportingAt).Milliseconds()
			}
			hb.Running = append(hb.Running, rs)
		}
		a.mu.Unlock()
		reply, err := a.client().Heartbeat(ctx, a.cfg.Name, hb)
		if err != nil {
			if ctx.Err() == nil {
				a.handleErr(ctx, "heartbeat", err)
			}
			continue
		}
		a.mu.Lock()
		if reply.IntervalMillis > 0 {
			a.interval = time.Duration(reply.IntervalMillis) * time.Millisecond
		}
		if reply.ProgressMillis > 0 {
			a.progressEvery = time.Duration(reply.ProgressMillis) * time.Millisecond
		}
		a.adoptEpoch(reply.Epoch)
		for _, id := range reply.Cancel {
			if r := a.running[id]; r != nil {
				a.log.Info("step stopped by the leader", a.stepAttrs(r.a)...)
				r.cancel()
				r.stopReport()
			}
		}
		a.mu.Unlock()
	}
}

// receivedSoFar is what the next poll acknowledges.
func (a *Agent) receivedSoFar() api.Received {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.received
}

// adoptEpoch starts counting deliveries of a new leader. Callers hold
// a.mu.
func (a *Agent) adoptEpoch(epoch string) {
	if epoch != "" && epoch != a.received.Epoch {
		a.received = api.Received{Epoch: epoch}
	}
}

// take records the assignments of a poll's answer as held, and what was
// received. An assignment sent again (its first answer was lost) is held
// once; a newer attempt of a step replaces an older one, which stops.
func (a *Agent) take(ctx context.Context, out api.Assignments) []*run {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.adoptEpoch(out.Epoch)
	var started []*run
	for _, as := range out.Assignments {
		if as.Seq > a.received.Seq {
			a.received.Seq = as.Seq
		}
		if old := a.running[as.StepID]; old != nil {
			if old.a.Attempt >= as.Attempt {
				continue
			}
			old.cancel()
			old.stopReport()
		}
		rctx, cancel := context.WithCancel(ctx)
		reportCtx, stopReport := context.WithCancel(context.Background())
		r := &run{a: as, ctx: rctx, cancel: cancel, reportCtx: reportCtx, stopReport: stopReport,
			progress: api.RunningStep{StepID: as.StepID, Attempt: as.Attempt}}
		a.running[as.StepID] = r
		started = append(started, r)
	}
	if len(started) > 0 {
		select {
		case a.busy <- struct{}{}:
		default:
		}
	}
	return started
}

// accept starts the assignments of a poll's (or a report's) answer. Each
// is held (listed in heartbeats) before the next poll acknowledges it, and
// waits for a slot on its own, so that the acknowledgement is not held up.
func (a *Agent) accept(out api.Assignments) {
	for _, r := range a.take(a.work, out) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			select {
			case a.slots <- struct{}{}:
				defer func() { <-a.slots }()
			case <-r.ctx.Done(): // stopped before it began
			}
			a.execute(r)
		}()
	}
}

// handBack stops every running step that is not reporting already; their
// reports say "released".
func (a *Agent) handBack() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.running {
		if !r.progress.Reporting {
			r.cancel()
		}
	}
}

func (a *Agent) setProgress(stepID string, p encoders.Progress) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.running[stepID]; r != nil {
		r.progress.Progress, r.progress.Frames, r.progress.MediaSeconds, r.progress.Speed = p.Fraction, p.Frames, p.MediaSeconds, p.Speed
	}
}

// taskDir is where a task's local files live.
func (a *Agent) taskDir(taskID string) string { return filepath.Join(a.cfg.WorkDir, taskID) }
