// Package host runs ittybit's encoder plugins: it launches the built-in
// ones (`ittybit plugin serve NAME`) and every executable in the plugin
// directory as go-plugin processes, treated alike; asks each what it can
// encode; picks one per encode (hardware with a free session first,
// software otherwise) and retries a failed hardware encode once in
// software; and kills them all on Close. Plugins die with the host even
// when it is SIGKILLed (a parent-death signal on Linux).
package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

// Config says which plugins to run.
type Config struct {
	// Self is the path of the ittybit binary, which serves the built-in
	// plugins.
	Self string
	// Builtins names the built-in plugins to launch, in order of
	// preference ("software", "nvenc", …). The software one takes audio,
	// images, and every encode no other plugin can.
	Builtins []string
	// BuiltinArgs are appended to each built-in plugin's command line
	// (`ittybit plugin serve NAME --ffmpeg PATH`).
	BuiltinArgs []string
	// InProcess runs these built-in plugins in this process, by name,
	// instead of in processes of their own: the CLI's software plugin,
	// where starting a process would cost a small task more than its
	// encode. An encode they run dies with this process, as a plugin
	// process would with it.
	InProcess map[string]encoderplugin.Encoder
	// PluginDir holds external plugins: every executable file in it is
	// launched. "" means none.
	PluginDir string
	// Env is added to the environment of plugin processes (KEY=VALUE).
	// They get only this and the allow-listed part of this process's
	// (PATH, locale, GPU driver settings).
	Env []string
	// Timeout bounds a plugin's start and its detection; 0 means 2
	// minutes (test encodes on many GPUs take a while).
	Timeout time.Duration
	// EncodeThreads bounds the threads of one software encode (0: ffmpeg's
	// choice), so that an operator can run several encodes per CPU host;
	// the agent's slots bound how many run at once.
	EncodeThreads int
	// Logger receives the host's lines and the plugins'; nil discards.
	Logger *slog.Logger
}

func (c Config) timeout() time.Duration { return cmp.Or(c.Timeout, 2*time.Minute) }

// ErrClosed ends the encodes still running when the host closes.
var ErrClosed = errors.New("plugin host closed")

// Host runs the plugins. Its methods are safe for concurrent use.
type Host struct {
	cfg       Config
	log       *slog.Logger
	plugins   []*instance // built-ins in Config order, then external ones by file name
	sessions  sessions
	life      context.Context
	closeLife context.CancelFunc
	closeOnce sync.Once
}

// Open launches the plugins and waits until each has said what it can do.
// A built-in plugin that fails to start fails Open; an external one is
// logged and left out.
func Open(ctx context.Context, cfg Config) (*Host, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &Host{cfg: cfg, log: log.With("component", "plugins")}
	h.life, h.closeLife = context.WithCancel(context.Background())
	for _, name := range cfg.Builtins {
		args := append([]string{"plugin", "serve", name}, cfg.BuiltinArgs...)
		h.plugins = append(h.plugins, &instance{name: name, path: cfg.Self, args: args, builtin: true, local: cfg.InProcess[name]})
	}
	if cfg.PluginDir != "" {
		paths, err := externalPlugins(cfg.PluginDir, h.log)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			h.plugins = append(h.plugins, &instance{name: p, path: p})
		}
	}
	// Start them side by side: detection waits on test encodes.
	errs := make([]error, len(h.plugins))
	var wg sync.WaitGroup
	for i, in := range h.plugins {
		wg.Go(func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			errs[i] = h.start(ctx, in)
		})
	}
	wg.Wait()
	var failed []error
	started := h.plugins[:0]
	seen := map[string]bool{}
	for i, in := range h.plugins {
		switch {
		case errs[i] != nil && in.builtin:
			failed = append(failed, errs[i])
		case errs[i] != nil:
			h.log.Warn("external plugin left out", "path", in.path, "err", errs[i])
		case seen[in.name]:
			h.log.Warn("plugin left out: another has its name", "plugin", in.name, "path", in.path)
			in.kill()
		default:
			seen[in.name] = true
			started = append(started, in)
		}
	}
	h.plugins = started
	if len(failed) > 0 {
		h.Close()
		return nil, fmt.Errorf("start built-in plugins: %w", errors.Join(failed...))
	}
	return h, nil
}

// Capabilities returns one row per plugin, backend, device and codec, as
// detected when the plugin (last) started.
func (h *Host) Capabilities() []encoders.Capability {
	var out []encoders.Capability
	for _, in := range h.plugins {
		out = append(out, in.capabilities()...)
	}
	return out
}

// Close ends running encodes and kills every plugin process. It is safe to
// call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.closeLife()
		var wg sync.WaitGroup
		for _, in := range h.plugins {
			wg.Go(in.kill)
		}
		wg.Wait()
	})
	return nil
}

// join returns a context that ends with ctx or when the host closes.
func (h *Host) join(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(h.life, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(nil) }
}
