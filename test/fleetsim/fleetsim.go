// Package fleetsim simulates a fleet of agents inside one process, for the
// system tests and the fleet benchmark: each simulated agent registers,
// sends heartbeats at the interval the leader gives, long-polls for
// assignments and reports, speaking the agent routes exactly as `ittybit
// agent` does (it acknowledges what it received, lists every step it holds
// until its report is answered), but takes a set time per step instead of
// running it. A Transport can lose requests and answers on the way, so
// that tests can check that nothing lost leaves a step stuck.
package fleetsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Config describes a fleet.
type Config struct {
	// Client calls the agent routes with a node token; every agent of the
	// fleet shares it (and its transport).
	Client *client.Client
	// Agents is the fleet's size; agents are named Prefix + a number.
	Agents int
	Prefix string
	// Slots per agent (default 2).
	Slots int
	// StepTime is how long a step takes.
	StepTime time.Duration
	// GiveUpReports: a report that fails is not tried again, and the step
	// is dropped (as an agent that lost its result would); otherwise the
	// agent retries, as ittybit agent does.
	GiveUpReports bool
	// Capabilities every agent advertises (default: software, every video
	// codec).
	Capabilities []encoders.Capability
	// Parts: the agents run the parts of split steps, each taking
	// PartTime per second of the part's media (the sound's part:
	// AudioPartTime per second), with progress told in heartbeats.
	Parts                   bool
	PartTime, AudioPartTime time.Duration
	// ProbeOutput, when set, is what every probe step reports (a media
	// description, so that the leader may split the task).
	ProbeOutput json.RawMessage
	// Slow makes the named agents this many times slower at everything.
	Slow map[string]float64
}

// Fleet is a running simulated fleet.
type Fleet struct {
	cfg    Config
	names  []string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	assigned  atomic.Int64 // assignments taken (resent ones once)
	reported  atomic.Int64 // reports answered
	completed atomic.Int64 // tasks whose upload step was reported done
	lost      atomic.Int64 // reports given up
}

// Start registers the fleet (64 at a time) and runs every agent until ctx
// ends or Stop.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Slots == 0 {
		cfg.Slots = 2
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sim-"
	}
	if cfg.Capabilities == nil {
		for _, codec := range encoders.VideoCodecs {
			cfg.Capabilities = append(cfg.Capabilities, encoders.Capability{Plugin: "software", Backend: encoders.BackendSoftware, Codec: codec, Available: true})
		}
	}
	f := &Fleet{cfg: cfg}
	regs := make([]*api.NodeRegistered, cfg.Agents)
	errs := make(chan error, cfg.Agents)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range cfg.Agents {
		name := fmt.Sprintf("%s%04d", cfg.Prefix, i)
		f.names = append(f.names, name)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			reg, err := registerRetrying(ctx, cfg.Client, api.NodeRegistration{Name: name, Slots: cfg.Slots, Capabilities: cfg.Capabilities, Parts: cfg.Parts})
			regs[i] = reg
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
	}
	run, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	for i, name := range f.names {
		a := &agent{f: f, name: name, interval: time.Duration(regs[i].IntervalMillis) * time.Millisecond, progressEvery: time.Second, held: map[string]*api.RunningStep{},
			reporting: map[string]time.Time{}, started: map[string]time.Time{}, takes: map[string]time.Duration{}}
		f.wg.Add(2)
		go func() { defer f.wg.Done(); a.heartbeats(run) }()
		go func() { defer f.wg.Done(); a.poll(run) }()
	}
	return f, nil
}

// registerRetrying registers an agent, trying again after transport
// errors (a lossy transport, a busy leader).
func registerRetrying(ctx context.Context, c *client.Client, reg api.NodeRegistration) (*api.NodeRegistered, error) {
	var err error
	for range 20 {
		var out *api.NodeRegistered
		if out, err = c.RegisterNode(ctx, reg); err == nil {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, err
}

// Stop stops every agent and waits for them.
func (f *Fleet) Stop() {
	f.cancel()
	f.wg.Wait()
}

// Drain tells the leader that every agent drains: they stay connected
// (heartbeats, long-polls) and take no work until Resume.
func (f *Fleet) Drain(ctx context.Context) error {
	return f.each(ctx, func(name string) error { return f.cfg.Client.DrainNode(ctx, name) })
}

// Resume registers every agent again: ready for work.
func (f *Fleet) Resume(ctx context.Context) error {
	return f.each(ctx, func(name string) error {
		_, err := registerRetrying(ctx, f.cfg.Client, api.NodeRegistration{Name: name, Slots: f.cfg.Slots, Capabilities: f.cfg.Capabilities})
		return err
	})
}

// each calls fn for every agent, 64 at a time.
func (f *Fleet) each(ctx context.Context, fn func(name string) error) error {
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(f.names))
	var wg sync.WaitGroup
	for _, name := range f.names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- fn(name)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Names are the agents' names.
func (f *Fleet) Names() []string { return f.names }

// Assigned is how many assignments the fleet has taken.
func (f *Fleet) Assigned() int64 { return f.assigned.Load() }

// Completed is how many tasks the fleet finished (upload reported).
func (f *Fleet) Completed() int64 { return f.completed.Load() }

// LostReports is how many reports the fleet gave up.
func (f *Fleet) LostReports() int64 { return f.lost.Load() }

// agent is one simulated agent.
type agent struct {
	f    *Fleet
	name string

	mu            sync.Mutex
	interval      time.Duration
	progressEvery time.Duration // the period while it holds steps
	received      api.Received
	held          map[string]*api.RunningStep
	// reporting holds when each held step's report began; started and
	// takes when it began and how long it takes, for its progress.
	reporting map[string]time.Time
	started   map[string]time.Time
	takes     map[string]time.Duration
}

// heartbeats reports what the agent holds, at the leader's interval.
func (a *agent) heartbeats(ctx context.Context) {
	for {
		a.mu.Lock()
		hb := api.Heartbeat{Received: a.received}
		for id, rs := range a.held {
			r := *rs
			if r.Reporting {
				r.ReportingMillis = time.Since(a.reporting[id]).Milliseconds()
			} else if d := a.takes[id]; d > 0 {
				r.Progress = min(1, float64(time.Since(a.started[id]))/float64(d))
			}
			hb.Running = append(hb.Running, r)
		}
		every := a.interval
		if len(a.held) > 0 && a.progressEvery > 0 {
			every = min(every, a.progressEvery)
		}
		a.mu.Unlock()
		if every <= 0 {
			every = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		reply, err := a.f.cfg.Client.Heartbeat(ctx, a.name, hb)
		if err != nil {
			continue
		}
		a.mu.Lock()
		if reply.IntervalMillis > 0 {
			a.interval = time.Duration(reply.IntervalMillis) * time.Millisecond
		}
		a.progressEvery = time.Duration(reply.ProgressMillis) * time.Millisecond
		a.adoptEpoch(reply.Epoch)
		for _, id := range reply.Cancel {
			a.drop(id) // the simulated step just stops
		}
		a.mu.Unlock()
	}
}

// adoptEpoch starts counting a new leader's deliveries. Callers hold a.mu.
func (a *agent) adoptEpoch(epoch string) {
	if epoch != "" && epoch != a.received.Epoch {
		a.received = api.Received{Epoch: epoch}
	}
}

// poll takes assignments and runs each for StepTime.
func (a *agent) poll(ctx context.Context) {
	for ctx.Err() == nil {
		a.mu.Lock()
		rcv := a.received
		a.mu.Unlock()
		got, err := a.f.cfg.Client.Assignments(ctx, a.name, 10*time.Second, rcv)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		a.accept(ctx, got)
	}
}

// accept holds the assignments of a poll's or a report's answer and
// starts each; one sent again is held once.
func (a *agent) accept(ctx context.Context, got api.Assignments) {
	a.mu.Lock()
	a.adoptEpoch(got.Epoch)
	var start []api.Assignment
	for _, as := range got.Assignments {
		a.received.Seq = max(a.received.Seq, as.Seq)
		if h := a.held[as.StepID]; h != nil && h.Attempt >= as.Attempt {
			continue // sent again: held already
		}
		a.held[as.StepID] = &api.RunningStep{StepID: as.StepID, Attempt: as.Attempt}
		start = append(start, as)
	}
	a.mu.Unlock()
	for _, as := range start {
		a.f.assigned.Add(1)
		a.f.wg.Add(1)
		go func() {
			defer a.f.wg.Done()
			a.work(ctx, as)
		}()
	}
}

// output is every simulated step's output.
var output, _ = json.Marshal(encoders.File{Object: "file", Kind: "video", URL: "s3://sim/out.mp4"})

// drop forgets a held step. Callers hold a.mu.
func (a *agent) drop(id string) {
	delete(a.held, id)
	delete(a.reporting, id)
	delete(a.started, id)
	delete(a.takes, id)
}

// duration is how long an assignment runs on this agent.
func (a *agent) duration(as api.Assignment) time.Duration {
	d := a.f.cfg.StepTime
	if p := as.Part; p != nil {
		per := a.f.cfg.PartTime
		if p.Kind == api.PartAudio {
			per = a.f.cfg.AudioPartTime
		}
		d = time.Duration((p.End - p.Start) * float64(per))
	}
	if f := a.f.cfg.Slow[a.name]; f > 0 {
		d = time.Duration(float64(d) * f)
	}
	return d
}

// work takes its time (StepTime, or a part's), then reports the step
// done until the report is answered (or, with GiveUpReports, after one
// failure); the task's next step may come back in the answer. A step the
// leader stops ends at once.
func (a *agent) work(ctx context.Context, as api.Assignment) {
	d := a.duration(as)
	a.mu.Lock()
	a.started[as.StepID], a.takes[as.StepID] = time.Now(), d
	a.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for wait := true; wait; {
		select {
		case <-ctx.Done():
			return
		case <-end:
			wait = false
		case <-tick.C:
			if !a.holds(as) {
				return // stopped by the leader
			}
		}
	}
	a.mu.Lock()
	if h := a.held[as.StepID]; h != nil && h.Attempt == as.Attempt {
		h.Reporting, a.reporting[as.StepID] = true, time.Now()
	}
	a.mu.Unlock()
	out := output
	if as.Step == api.StepProbe && a.f.cfg.ProbeOutput != nil {
		out = a.f.cfg.ProbeOutput
	}
	rep := api.StepReport{TaskID: as.TaskID, Attempt: as.Attempt, Outcome: api.OutcomeCompleted, Output: out, Continue: true}
	var next api.Assignments
	for ctx.Err() == nil {
		reply, err := a.f.cfg.Client.ReportStep(ctx, as.StepID, rep)
		if err == nil {
			a.f.reported.Add(1)
			if as.Step == api.StepUpload {
				a.f.completed.Add(1)
			}
			next = reply.Assignments
			break
		}
		var refused *api.Error
		if errors.As(err, &refused) || a.f.cfg.GiveUpReports || !a.holds(as) {
			if refused == nil {
				a.f.lost.Add(1)
			}
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	a.mu.Lock()
	if h := a.held[as.StepID]; h != nil && h.Attempt == as.Attempt {
		a.drop(as.StepID)
	}
	a.mu.Unlock()
	a.accept(ctx, next)
}

// holds reports whether the agent still holds the attempt (the leader may
// have stopped it).
func (a *agent) holds(as api.Assignment) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.held[as.StepID]
	return h != nil && h.Attempt == as.Attempt
}

// Completed reads a server's count of completed tasks from its metrics
// (the leader's is the cluster's).
func Completed(ctx context.Context, baseURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	n := 0.0
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "ittybit_tasks_finished_total{") && strings.Contains(l, `status="completed"`) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			n += v
		}
	}
	return int64(n), nil
}

// Unfinished lists up to 100 processing and 100 queued tasks, each with
// the state of its steps: what a test or benchmark shows when tasks stop
// finishing.
func Unfinished(ctx context.Context, users *client.Client) string {
	var b strings.Builder
	for _, status := range []string{"processing", "queued"} {
		page, err := users.List(ctx, client.ListOptions{Limit: 100, Status: status})
		if err != nil {
			fmt.Fprintf(&b, "list %s tasks: %v\n", status, err)
			continue
		}
		for _, t := range page.Data {
			fmt.Fprintf(&b, "  %s %s:", t.ID, t.Status)
			for _, s := range t.Steps {
				node := "-"
				if s.Node != nil {
					node = *s.Node
				}
				fmt.Fprintf(&b, " %s=%s(attempt %d on %s)", s.Kind, s.Status, s.Attempt, node)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
