package detect

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/encoders"
)

// SessionLimit returns how many NVENC encodes a GPU runs at once: none
// (0) on data-centre and professional cards; on GeForce, TITAN and the
// entry-level professional cards the driver's limit, per Jellyfin's table:
// before 530 three, 530–549 five, 550–589 eight, 590 and later twelve. An
// unknown driver version gets the oldest limit: too low a limit only costs
// throughput, too high a one fails encodes.
func SessionLimit(gpuName, driver string) int {
	if !limitedCard(gpuName) {
		return 0
	}
	major, err := strconv.Atoi(strings.SplitN(strings.TrimSpace(driver), ".", 2)[0])
	switch {
	case err != nil || major < 530:
		return 3
	case major < 550:
		return 5
	case major < 590:
		return 8
	}
	return 12
}

var (
	// entryPro are professional cards with the consumer session limit.
	entryPro = regexp.MustCompile(`^(Quadro (P400|P600|P620|P1000|K\d+)|T400|T600|T1000|NVS)\b`)
	// dataCentre are the A, L, T, H and B series (A10, L4, T4, …).
	dataCentre = regexp.MustCompile(`^[ALTHB]\d+`)
	// decodeOnly are the compute GPUs with NVDEC but no NVENC (evidence in
	// docs/hardware.md §3).
	decodeOnly = regexp.MustCompile(`\b(A100|A30|A800|H100|H200|H800|GH200)\b`)
)

// limitedCard reports whether a GPU model has the consumer session limit.
func limitedCard(name string) bool {
	n := strings.TrimPrefix(strings.TrimSpace(name), "NVIDIA ")
	switch {
	case strings.HasPrefix(n, "GeForce"), strings.HasPrefix(strings.ToUpper(n), "TITAN"), entryPro.MatchString(n):
		return true
	case strings.HasPrefix(n, "Tesla"), strings.HasPrefix(n, "Quadro"), strings.HasPrefix(n, "RTX "), dataCentre.MatchString(n):
		return false
	}
	return true // unknown: assume the limit
}

// DecodeOnly reports whether a GPU model decodes video but cannot encode
// it: the A100, A30, H100, H200 and their kin have NVDEC and no NVENC.
func DecodeOnly(gpuName string) bool { return decodeOnly.MatchString(gpuName) }

// NVENC detects NVIDIA encoders: a /dev/nvidia* node, the GPUs nvidia-smi
// lists, then per GPU and codec the build's encoder and a test encode.
func NVENC(ctx context.Context, cfg Config) Report {
	b := encoders.BackendNVENC
	if len(deviceNodes(cfg, "/dev", nvidiaNode)) == 0 {
		return unavailable(b, "no NVIDIA GPU: no /dev/nvidia[0-9] device node")
	}
	out, err := cfg.output(ctx, cfg.nvidiaSMI(), GPUQuery...)
	if err != nil {
		return unavailable(b, "nvidia-smi failed: "+err.Error())
	}
	gpus, err := ParseGPUs(out)
	if err != nil {
		return unavailable(b, err.Error())
	}
	build, err := readBuild(ctx, cfg, true)
	if err != nil {
		return unavailable(b, err.Error())
	}
	r := Report{Backend: b, Filters: gpuFilters(build.filters)}
	for _, g := range gpus {
		d := Device{
			ID:   fmt.Sprintf("GPU %s: %s (driver %s)", g.Index, g.Name, g.Driver),
			Path: g.Index, Name: g.Name, Driver: g.Driver, DecodeOnly: DecodeOnly(g.Name),
		}
		if !d.DecodeOnly {
			d.MaxSessions = SessionLimit(g.Name, g.Driver)
		}
		r.Devices = append(r.Devices, d)
		for _, codec := range encoders.VideoCodecs {
			c := encoders.Capability{Backend: b, Codec: codec, Device: d.ID, MaxSessions: d.MaxSessions}
			enc := encoders.EncoderName(b, codec)
			switch {
			case d.DecodeOnly:
				c.Reason = g.Name + " has no NVENC: decode only (NVDEC present); encode in software"
			case enc == "":
				c.Reason = "NVENC has no " + strings.ToUpper(codec) + " encoder"
			case !build.encoders[enc]:
				c.Reason = "this ffmpeg has no " + enc + " encoder"
			default:
				c.Available, c.Reason = cfg.testEncode(ctx, []string{
					"-init_hw_device", "cuda=cu:" + d.Path, "-filter_hw_device", "cu",
				}, "format=nv12,hwupload", enc)
			}
			r.Capabilities = append(r.Capabilities, c)
		}
	}
	return r
}

var nvidiaNode = regexp.MustCompile(`^nvidia[0-9]+$`)

// nvidiaAny matches every NVIDIA device node (nvidia0, nvidiactl,
// nvidia-uvm, …), for the detection cache's key.
var nvidiaAny = regexp.MustCompile(`^nvidia`)
