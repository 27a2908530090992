package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-plugin"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

// instance is one plugin: how to start it, and its running process.
type instance struct {
	// name is the plugin's Info name (the file name until it answers). It
	// is set by the first start, in Open, and never changes after.
	name    string
	path    string
	args    []string
	builtin bool

	mu      sync.Mutex // held while the plugin starts
	gen     int        // which launch this is; a crash is acted on once per launch
	client  *plugin.Client
	enc     encoderplugin.Encoder
	version string
	// local, when set, is a built-in plugin run in this process
	// (Config.InProcess): no process to start, watch or kill.
	local encoderplugin.Encoder

	// caps has its own lock, so that choosing an encoder never waits on a
	// plugin that is starting (detection runs test encodes).
	capsMu sync.Mutex
	caps   []encoders.Capability
}

// running returns the plugin's encoder and its launch generation, starting
// the plugin again if its process has gone (go-plugin cannot restart a
// client: a new process gets a new one).
func (in *instance) running(ctx context.Context, h *Host) (encoderplugin.Encoder, int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if h.life.Err() != nil {
		return nil, 0, ErrClosed
	}
	if in.local != nil {
		return in.enc, in.gen, nil
	}
	if in.client != nil && !in.client.Exited() {
		return in.enc, in.gen, nil
	}
	if in.client != nil {
		in.client.Kill()
		h.log.Warn("plugin exited; starting it again", "plugin", in.name)
	}
	if err := h.start(ctx, in); err != nil {
		return nil, 0, err
	}
	return in.enc, in.gen, nil
}

// stopped records that launch gen went away mid-call: its process is killed
// (if it lingers) and the next call starts a new one.
func (in *instance) stopped(gen int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if gen == in.gen && in.client != nil {
		in.client.Kill()
	}
}

func (in *instance) kill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.client != nil {
		in.client.Kill()
	}
}

func (in *instance) capabilities() []encoders.Capability {
	in.capsMu.Lock()
	defer in.capsMu.Unlock()
	return slices.Clone(in.caps)
}

// start launches the plugin's process (gRPC only, mutual TLS, dying with
// this process), asks who it is and what it can do. Called with in.mu held.
func (h *Host) start(ctx context.Context, in *instance) error {
	if in.local != nil {
		return h.introduce(ctx, in, nil, in.local, func(format string, args ...any) error {
			return fmt.Errorf("built-in plugin %s: "+format, append([]any{in.name}, args...)...)
		})
	}
	cmd := exec.Command(in.path, in.args...)
	guardParentDeath(cmd)
	cmd.Env = h.pluginEnv()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  encoderplugin.Handshake(),
		VersionedPlugins: encoderplugin.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		// Secrets in this process's environment (API keys, cloud
		// credentials) stay here: plugins get pluginEnv only.
		SkipHostEnv:  true,
		StartTimeout: h.cfg.timeout(),
		Logger:       newHCLogger(h.log.With("plugin", in.name)),
	})
	fail := func(format string, args ...any) error {
		client.Kill()
		label := "plugin " + in.path
		if in.builtin {
			label = "built-in plugin " + in.args[2]
		}
		return fmt.Errorf("%s: "+format, append([]any{label}, args...)...)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail("start: %w", err)
	}
	raw, err := rpc.Dispense(encoderplugin.PluginName)
	if err != nil {
		return fail("dispense: %w", err)
	}
	enc, ok := raw.(encoderplugin.Encoder)
	if !ok {
		return fail("dispensed a %T, not an encoder", raw)
	}
	return h.introduce(ctx, in, client, enc, fail)
}

// introduce asks a started plugin what it is and what it can encode, and
// makes it the instance's.
func (h *Host) introduce(ctx context.Context, in *instance, client *plugin.Client, enc encoderplugin.Encoder, fail func(string, ...any) error) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.timeout())
	defer cancel()
	info, err := enc.Info(ctx)
	if err != nil {
		return fail("%w", err)
	}
	if info.Name == "" || strings.ContainsAny(info.Name, " \t\n/") {
		return fail("bad name %q: one word, please", info.Name)
	}
	caps, err := enc.Detect(ctx)
	if err != nil {
		return fail("%w", err)
	}
	for i := range caps {
		caps[i].Plugin = info.Name
		if !caps[i].Backend.Known() && caps[i].Available {
			caps[i].Available, caps[i].Reason = false, fmt.Sprintf("unknown backend %q", caps[i].Backend)
		}
	}
	encoders.SortCapabilities(caps)
	if in.gen == 0 {
		in.name = info.Name
	} else if info.Name != in.name {
		return fail("came back as %q, was %q", info.Name, in.name)
	}
	in.version = info.Version
	in.capsMu.Lock()
	in.caps = caps
	in.capsMu.Unlock()
	in.client, in.enc = client, enc
	in.gen++
	if client != nil {
		h.log.Debug("plugin started", "plugin", in.name, "version", in.version, "path", in.path, "pid", client.ID())
	}
	return nil
}

// envAllowed are the variables of this process a plugin gets: what finding
// programs and GPU drivers takes, nothing else.
var envAllowed = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "LD_LIBRARY_PATH", "GOCOVERDIR"}

// envAllowedPrefixes are the driver and runtime settings passed on.
var envAllowedPrefixes = []string{"LC_", "LIBVA_", "CUDA_", "NVIDIA_", "ONEVPL_", "INTEL_"}

func (h *Host) pluginEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(envAllowed, k) || slices.ContainsFunc(envAllowedPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			env = append(env, kv)
		}
	}
	return append(env, h.cfg.Env...)
}

// externalPlugins lists the executable files of dir, by name.
func externalPlugins(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read plugin dir: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			log.Debug("not a plugin: skipped", "path", p)
			continue
		}
		paths = append(paths, p)
	}
	return paths, nil
}
