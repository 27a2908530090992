package detect

import (
	"context"
	"regexp"

	"github.com/ittybit-oss/ittybit/encoders"
)

var renderNode = regexp.MustCompile(`^renderD[0-9]+$`)

// renderDevice is a render node and the VAAPI driver serving it, or why it
// cannot be used.
type renderDevice struct {
	Device
	problem string
}

// renderDevices finds the render nodes and asks libva, through ffmpeg,
// which driver serves each.
func renderDevices(ctx context.Context, cfg Config) []renderDevice {
	var out []renderDevice
	for _, node := range deviceNodes(cfg, "/dev/dri", renderNode) {
		d := renderDevice{Device: Device{ID: node, Path: node}}
		if d.problem = openCheck(cfg, node); d.problem == "" {
			// ffmpeg exits non-zero here (no output named); the driver is
			// on stderr all the same.
			_, stderr, _ := cfg.run(ctx, cfg.ffmpeg(), "-hide_banner", "-v", "verbose", "-init_hw_device", "vaapi=va:"+node)
			name, _, err := ParseVAAPIDriver(stderr)
			if err != nil {
				d.problem = "VAAPI cannot open " + node + ": " + err.Error()
			}
			d.Driver = name
		}
		out = append(out, d)
	}
	return out
}

// VAAPI detects VAAPI encoders: per render node, its driver (iHD, i965,
// Mesa Gallium), then per codec the build's encoder and a test encode.
func VAAPI(ctx context.Context, cfg Config) Report {
	return vaDetect(ctx, cfg, encoders.BackendVAAPI, func(d renderDevice) string { return d.problem },
		func(node string) ([]string, string) {
			return []string{"-init_hw_device", "vaapi=va:" + node, "-filter_hw_device", "va"}, "format=nv12,hwupload"
		})
}

// QSV detects Intel Quick Sync encoders. On Linux QSV runs on the iHD
// VAAPI driver (Jellyfin derives the QSV device from the VAAPI one), so a
// node served by i965 or Mesa has none.
func QSV(ctx context.Context, cfg Config) Report {
	return vaDetect(ctx, cfg, encoders.BackendQSV, func(d renderDevice) string {
		switch {
		case d.problem != "":
			return d.problem
		case d.Driver == "i965":
			return "QSV needs Intel's iHD driver; " + d.Path + " is served by i965 (VAAPI only)"
		case d.Driver != "iHD":
			return "QSV needs an Intel GPU on the iHD driver; " + d.Path + " is served by " + d.Driver
		}
		return ""
	}, func(node string) ([]string, string) {
		return []string{"-init_hw_device", "vaapi=va:" + node, "-init_hw_device", "qsv=qs@va", "-filter_hw_device", "qs"},
			"format=nv12,hwupload=extra_hw_frames=64"
	})
}

// vaDetect is the detection shared by the render-node backends: problem
// says why a node cannot serve the backend, hw gives the arguments that
// open a node and the filter that uploads a frame to it.
func vaDetect(ctx context.Context, cfg Config, b encoders.Backend, problem func(renderDevice) string, hw func(node string) ([]string, string)) Report {
	devs := renderDevices(ctx, cfg)
	if len(devs) == 0 {
		return unavailable(b, "no GPU: no /dev/dri/renderD* render node")
	}
	build, err := readBuild(ctx, cfg, true)
	if err != nil {
		return unavailable(b, err.Error())
	}
	r := Report{Backend: b, Filters: gpuFilters(build.filters)}
	for _, d := range devs {
		r.Devices = append(r.Devices, d.Device)
		why := problem(d)
		for _, codec := range encoders.VideoCodecs {
			c := encoders.Capability{Backend: b, Codec: codec, Device: d.ID}
			enc := encoders.EncoderName(b, codec)
			switch {
			case why != "":
				c.Reason = why
			case !build.encoders[enc]:
				c.Reason = "this ffmpeg has no " + enc + " encoder"
			default:
				args, upload := hw(d.Path)
				c.Available, c.Reason = cfg.testEncode(ctx, args, upload, enc)
			}
			r.Capabilities = append(r.Capabilities, c)
		}
	}
	return r
}
