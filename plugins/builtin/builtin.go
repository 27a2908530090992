// Package builtin holds ittybit's own encoder plugins: software (ffmpeg's
// libx264, libx265, libvpx-vp9, SVT-AV1 and the audio and image encoders),
// nvenc, qsv and vaapi. `ittybit plugin serve NAME` serves one of them over
// encoderplugin, so the built-in plugins run out of process exactly like
// external ones: the host cannot tell them apart.
package builtin

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

// registry maps each built-in plugin to its backend.
var registry = map[string]encoders.Backend{
	"software": encoders.BackendSoftware,
	"nvenc":    encoders.BackendNVENC,
	"qsv":      encoders.BackendQSV,
	"vaapi":    encoders.BackendVAAPI,
}

// Names lists the built-in plugins, software first.
func Names() []string {
	names := make([]string, 0, len(registry))
	for _, b := range encoders.Backends {
		for name, rb := range registry {
			if rb == b {
				names = append(names, name)
			}
		}
	}
	return names
}

// Possible lists the built-in plugins whose backend may be available on
// this host, judged from its device nodes alone (detect.MayHave),
// software first: what a short-lived process (the CLI) starts.
func Possible(cfg detect.Config) []string {
	var out []string
	for _, name := range Names() {
		if detect.MayHave(cfg, registry[name]) {
			out = append(out, name)
		}
	}
	return out
}

// Config is what a built-in plugin needs.
type Config struct {
	// Detect says where detection looks and which ffmpeg to run (also for
	// encodes).
	Detect detect.Config
	// Version is reported by Info: ittybit's version.
	Version string
}

// New returns the built-in plugin called name.
func New(name string, cfg Config) (encoderplugin.Encoder, error) {
	b, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("no built-in plugin %q; there are %v", name, Names())
	}
	return &plugin{name: name, backend: b, cfg: cfg}, nil
}

// plugin is a built-in plugin: detection of one backend, and encodes with
// encoders/ffmpeg on the devices detection found.
type plugin struct {
	name    string
	backend encoders.Backend
	cfg     Config

	mu     sync.Mutex
	report *detect.Report // the last detection, nil before the first
}

var _ encoderplugin.Encoder = (*plugin)(nil)

func (p *plugin) Info(context.Context) (encoderplugin.Info, error) {
	return encoderplugin.Info{Name: p.name, Version: p.cfg.Version}, nil
}

// Detect runs detection afresh and keeps the result for encodes.
func (p *plugin) Detect(ctx context.Context) ([]encoders.Capability, error) {
	r, err := detect.Detect(ctx, p.cfg.Detect, p.backend)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.report = &r
	p.mu.Unlock()
	return slices.Clone(r.Capabilities), nil
}

// Encode runs the plan on the device named, with a Runner and a Prober of
// its own so that the request's trace sees every command.
func (p *plugin) Encode(ctx context.Context, req encoderplugin.Request, progress func(encoders.Progress)) (encoders.File, error) {
	plan := req.Job.Plan
	if plan.Backend != p.backend {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "the %s plugin cannot run a plan for the %s backend", p.name, plan.Backend)
	}
	runner := &ffmpeg.Runner{Path: p.cfg.Detect.FFmpeg, Trace: req.Trace}
	prober := &probe.Prober{Trace: req.Trace}
	if !p.backend.Hardware() {
		return (&ffmpeg.Software{Runner: runner, Prober: prober}).Encode(ctx, req.Job, progress)
	}
	dev, filters, err := p.device(ctx, req.Device)
	if err != nil {
		return encoders.File{}, err
	}
	hw := &ffmpeg.Hardware{Runner: runner, Prober: prober, Device: ffmpeg.Device{Path: dev.Path, Driver: dev.Driver, Filters: filters}}
	return hw.Encode(ctx, req.Job, progress)
}

// device finds the device a capability row named, detecting first if this
// process has not yet.
func (p *plugin) device(ctx context.Context, id string) (detect.Device, []string, error) {
	p.mu.Lock()
	r := p.report
	p.mu.Unlock()
	if r == nil {
		if _, err := p.Detect(ctx); err != nil {
			return detect.Device{}, nil, ittybit.Errorf(ittybit.ErrInternal, "detect %s: %v", p.backend, err)
		}
		p.mu.Lock()
		r = p.report
		p.mu.Unlock()
	}
	d, ok := r.Device(id)
	if !ok {
		return detect.Device{}, nil, ittybit.Errorf(ittybit.ErrEncodeFailed, "the %s plugin has no device %q", p.name, id)
	}
	if d.DecodeOnly {
		return detect.Device{}, nil, ittybit.Errorf(ittybit.ErrEncodeFailed, "%s cannot encode: it has no NVENC", d.Name)
	}
	return d, r.Filters, nil
}
