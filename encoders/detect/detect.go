// Package detect finds out which encoders this machine can really use, per
// backend: the device nodes (/dev/dri/renderD*, /dev/nvidia*), nvidia-smi
// (GPU model, driver version), what the ffmpeg build has (-encoders,
// -filters), which driver serves each render node, and finally a one-frame
// test encode per device and codec, judged by its exit status under a
// timeout. A build listing h264_nvenc proves nothing: Debian's ffmpeg lists
// it on machines without a GPU.
//
// The I/O is thin and the parsing pure: the parsers are tested on captured
// outputs kept in testdata, the detectors on fake tools and fixture /dev
// trees. Where to look (the filesystem root, the tools) comes from Config.
package detect

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Config says where detection looks. The zero value looks at this machine
// with the tools on PATH.
type Config struct {
	// Root is the filesystem root device nodes are looked for under; ""
	// means "/". Tests point it at a fixture tree.
	Root string
	// FFmpeg and NvidiaSMI are the programs; "" means the name on PATH.
	FFmpeg    string
	NvidiaSMI string
	// Timeout bounds each command, a test encode included; 0 means 15 s.
	Timeout time.Duration
	// CacheDir, when set, keeps each backend's report there (cache.go),
	// reused while the ffmpeg binary, nvidia-smi and the device nodes stay
	// the same: short-lived processes (the CLI) skip detection's commands.
	CacheDir string
}

func (c Config) root() string { return cmp.Or(c.Root, "/") }

func (c Config) ffmpeg() string { return cmp.Or(c.FFmpeg, "ffmpeg") }

func (c Config) nvidiaSMI() string { return cmp.Or(c.NvidiaSMI, "nvidia-smi") }

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 15 * time.Second
}

// onHost returns where a device path ("/dev/dri/renderD128") lies under Root.
func (c Config) onHost(dev string) string { return filepath.Join(c.root(), dev) }

// Report is what detection found for one backend.
type Report struct {
	Backend encoders.Backend
	// Devices are the GPUs or render nodes found, usable or not.
	Devices []Device
	// Filters are the GPU filters of the ffmpeg build (scale_cuda,
	// pad_vaapi, vpp_qsv, …): they decide how much of a plan runs on the GPU.
	Filters []string
	// Capabilities has one row per device and video codec (one per codec
	// with no device when none was found). Plugin is left empty.
	Capabilities []encoders.Capability
}

// Device returns the device a capability row names.
func (r Report) Device(id string) (Device, bool) {
	for _, d := range r.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return Device{}, false
}

// Device is a GPU or render node.
type Device struct {
	// ID is the name in capability rows: the render node for VAAPI and
	// QSV, "GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)" for NVENC.
	ID string
	// Path is what ffmpeg opens: the render node ("/dev/dri/renderD128"),
	// or the CUDA device index ("0").
	Path string
	// Name is the GPU model, when known (NVIDIA).
	Name string
	// Driver is the VAAPI driver ("iHD", "i965", "Mesa Gallium") or the
	// NVIDIA driver version ("535.104.05").
	Driver string
	// DecodeOnly is set for GPUs with decoders but no encoder (A100, H100,
	// H200): NVDEC is there, NVENC is not.
	DecodeOnly bool
	// MaxSessions is the concurrent encode limit; 0 means none.
	MaxSessions int
}

// Detector detects one backend.
type Detector func(ctx context.Context, cfg Config) Report

// detectors is the registry of backends detection knows.
var detectors = map[encoders.Backend]Detector{
	encoders.BackendSoftware: Software,
	encoders.BackendNVENC:    NVENC,
	encoders.BackendQSV:      QSV,
	encoders.BackendVAAPI:    VAAPI,
}

// Detect runs the detector of backend b, or, with a CacheDir, takes its
// report from the cache while what it depends on is unchanged. A report
// that a command running out of time shaped is not cached.
func Detect(ctx context.Context, cfg Config, b encoders.Backend) (Report, error) {
	d, ok := detectors[b]
	if !ok {
		return Report{}, fmt.Errorf("detect: unknown backend %q", b)
	}
	if cfg.CacheDir == "" {
		return d(ctx, cfg), nil
	}
	key := cacheKey(cfg, b)
	if r, ok := readCache(cfg.CacheDir, b, key); ok {
		return r, nil
	}
	ctx, timeouts := withTimeouts(ctx)
	r := d(ctx, cfg)
	// A command that ran out of time (a stalled host, a test encode that
	// hung once) shaped this report: the next run detects again.
	if timeouts() == 0 && ctx.Err() == nil {
		writeCache(cfg.CacheDir, b, key, r)
	}
	return r, nil
}

// unavailable returns a report whose every codec row says why the backend
// cannot be used (no device, no driver, no tool).
func unavailable(b encoders.Backend, reason string) Report {
	r := Report{Backend: b}
	for _, codec := range encoders.VideoCodecs {
		r.Capabilities = append(r.Capabilities, encoders.Capability{Backend: b, Codec: codec, Reason: reason})
	}
	return r
}

// gpuFilters keeps the filters that run on a GPU or move frames to one.
func gpuFilters(all map[string]bool) []string {
	var out []string
	for name := range all {
		if hasAnySuffix(name, "_cuda", "_npp", "_vaapi", "_qsv") || name == "hwupload" || name == "hwdownload" || name == "hwmap" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func hasAnySuffix(s string, suffixes ...string) bool {
	for _, suf := range suffixes {
		if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
			return true
		}
	}
	return false
}

// Software reports the software encoders the ffmpeg build has. They need
// no device, so the build's list is the answer.
func Software(ctx context.Context, cfg Config) Report {
	b := encoders.BackendSoftware
	build, err := readBuild(ctx, cfg, false)
	if err != nil {
		return unavailable(b, err.Error())
	}
	r := Report{Backend: b}
	for _, codec := range encoders.VideoCodecs {
		c := encoders.Capability{Backend: b, Codec: codec, Available: true}
		if enc := encoders.EncoderName(b, codec); !build.encoders[enc] {
			c.Available, c.Reason = false, fmt.Sprintf("this ffmpeg has no %s encoder", enc)
		}
		r.Capabilities = append(r.Capabilities, c)
	}
	return r
}

// MayHave reports, from the device nodes alone (no process is run),
// whether backend b could be available on this host: software always;
// NVENC with a /dev/nvidia[0-9] node; QSV and VAAPI with a render node.
// Detect finds out for sure; the CLI starts only the plugins that may.
func MayHave(cfg Config, b encoders.Backend) bool {
	switch b {
	case encoders.BackendNVENC:
		return len(deviceNodes(cfg, "/dev", nvidiaNode)) > 0
	case encoders.BackendQSV, encoders.BackendVAAPI:
		return len(deviceNodes(cfg, "/dev/dri", renderNode)) > 0
	}
	return true
}
