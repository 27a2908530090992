package ffmpeg

import (
	"fmt"
	"slices"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Device is the GPU a hardware plan runs on, and what the ffmpeg build can
// do there (encoders/detect finds both).
type Device struct {
	// Path is the render node for VAAPI and QSV ("/dev/dri/renderD128"),
	// the CUDA device index for NVENC ("0"); "" means the first.
	Path string
	// Driver is the VAAPI driver ("iHD", "i965", "Mesa Gallium"), when
	// known: i965 gets constant bitrate, as its VBR can pixelate.
	Driver string
	// Filters names the GPU filters of the build (scale_cuda, pad_vaapi,
	// vpp_qsv, …). Without its backend's scaler, every filter runs on the
	// CPU and frames are uploaded once before the encoder.
	Filters []string
}

func (d Device) has(filter string) bool { return filter != "" && slices.Contains(d.Filters, filter) }

// hwPath is how much of a hardware encode runs on the GPU
// (docs/hardware.md §2.5).
type hwPath int

const (
	// pathUpload decodes and filters on the CPU and uploads the finished
	// frames: for sources the GPU cannot decode (rotated, 4:4:4, 10-bit,
	// unknown codecs) and builds without the GPU scaler.
	pathUpload hwPath = iota
	// pathMixed decodes and scales on the GPU, pads or crops on the CPU
	// (no GPU filter for it), then uploads again: one round trip of
	// scaled, hence small, frames.
	pathMixed
	// pathFull keeps frames on the GPU from decoder to encoder.
	pathFull
)

// hwBackend is what differs between the hardware backends.
type hwBackend struct {
	// init opens the device and names it for filters.
	init func(dev string) []string
	// decode asks for hardware decoding of a source codec (ffprobe name)
	// into frames that stay on the GPU.
	decode func(codec string) []string
	// scaler is the GPU scale filter; pad the GPU pad filter ("" if none).
	scaler, pad string
	// cropOnGPU is set when the scaler crops too (vpp_qsv).
	cropOnGPU bool
	// upload moves CPU frames to the device.
	upload        string
	defaultDevice string
}

var hwBackends = map[encoders.Backend]hwBackend{
	encoders.BackendNVENC: {
		init: func(dev string) []string {
			return []string{"-init_hw_device", "cuda=cu:" + dev, "-filter_hw_device", "cu"}
		},
		decode: func(string) []string {
			return []string{"-hwaccel", "cuda", "-hwaccel_device", "cu", "-hwaccel_output_format", "cuda"}
		},
		// pad_cuda arrived with ffmpeg 8.0; scale_cuda cannot keep the
		// aspect ratio itself, so sizes always come from the plan.
		scaler: "scale_cuda", pad: "pad_cuda", upload: "hwupload", defaultDevice: "0",
	},
	encoders.BackendVAAPI: {
		init: func(dev string) []string {
			return []string{"-init_hw_device", "vaapi=va:" + dev, "-filter_hw_device", "va"}
		},
		decode: func(string) []string {
			return []string{"-hwaccel", "vaapi", "-hwaccel_device", "va", "-hwaccel_output_format", "vaapi"}
		},
		// pad_vaapi arrived with ffmpeg 6.1.
		scaler: "scale_vaapi", pad: "pad_vaapi", upload: "hwupload", defaultDevice: "/dev/dri/renderD128",
	},
	encoders.BackendQSV: {
		// On Linux the QSV device derives from the VAAPI one (Jellyfin).
		init: func(dev string) []string {
			return []string{"-init_hw_device", "vaapi=va:" + dev, "-init_hw_device", "qsv=qs@va", "-filter_hw_device", "qs"}
		},
		// QSV decodes through its own decoders (h264_qsv, …).
		decode: func(codec string) []string {
			return []string{"-hwaccel", "qsv", "-hwaccel_output_format", "qsv", "-c:v", qsvDecoders[codec]}
		},
		scaler: "vpp_qsv", cropOnGPU: true, upload: "hwupload=extra_hw_frames=64", defaultDevice: "/dev/dri/renderD128",
	},
}

// qsvDecoders maps the source codecs every GPU backend decodes (ffprobe's
// names) to QSV's decoders.
var qsvDecoders = map[string]string{
	"h264": "h264_qsv", "hevc": "hevc_qsv", "vp9": "vp9_qsv", "av1": "av1_qsv", "mpeg2video": "mpeg2_qsv",
}

// gpuDecodable reports whether the GPU can decode the source into frames
// the GPU filters take: a common codec, 8-bit 4:2:0, no rotation to apply
// (autorotation inserts CPU filters).
func gpuDecodable(m encoders.MediaInfo) bool {
	_, known := qsvDecoders[m.Codecs.Video]
	pix := m.PixelFmt == "yuv420p" || m.PixelFmt == "yuvj420p" || m.PixelFmt == "nv12"
	return known && pix && m.Rotation == 0 && !m.Still
}

// hardware is how one plan runs on one device.
type hardware struct {
	encoders.Backend
	hwBackend
	dev  Device
	path hwPath
}

// newHardware chooses the GPU path for plan on dev; nil for software.
func newHardware(plan encoders.Plan, dev Device) (*hardware, error) {
	if !plan.Backend.Hardware() {
		return nil, nil
	}
	hb, ok := hwBackends[plan.Backend]
	if !ok {
		return nil, fmt.Errorf("no ffmpeg arguments for backend %q", plan.Backend)
	}
	if plan.Kind != encoders.KindVideo && plan.Kind != encoders.KindAdaptive || plan.Video == nil {
		return nil, fmt.Errorf("the %s backend encodes video, not %s", plan.Backend, plan.Kind)
	}
	if dev.Path == "" {
		dev.Path = hb.defaultDevice
	}
	h := &hardware{Backend: plan.Backend, hwBackend: hb, dev: dev, path: pathFull}
	v := plan.Video
	switch {
	case !dev.has(hb.scaler) || !gpuDecodable(plan.Source):
		h.path = pathUpload
	case v.Padded() && !dev.has(hb.pad), v.Cropped() && !hb.cropOnGPU:
		h.path = pathMixed
	}
	return h, nil
}

// inputArgs open the device and, when frames stay on the GPU, ask for
// hardware decoding; they go before the input.
func (h *hardware) inputArgs(src encoders.MediaInfo) (global, input []string) {
	global = h.init(h.dev.Path)
	if h.path != pathUpload {
		input = h.decode(src.Codecs.Video)
	}
	return global, input
}

// scale returns the GPU filter that scales to w×h, cropping first for
// cover when the scaler can (vpp_qsv's crop is in source pixels).
func (h *hardware) scale(w, ht int, crop *encoders.VideoPlan, src encoders.MediaInfo) string {
	if crop != nil && h.cropOnGPU && crop.Cropped() {
		// Stored (decoded) pixels per scaled pixel, on each axis.
		sw, sh := storedSize(src)
		fx, fy := float64(sw)/float64(crop.ScaleWidth), float64(sh)/float64(crop.ScaleHeight)
		even := func(x float64) int { return int(x/2+0.5) * 2 }
		return fmt.Sprintf("%s=cw=%d:ch=%d:cx=%d:cy=%d:w=%d:h=%d:format=nv12", h.scaler,
			even(float64(crop.Width)*fx), even(float64(crop.Height)*fy), even(float64(crop.X)*fx), even(float64(crop.Y)*fy), w, ht)
	}
	return fmt.Sprintf("%s=w=%d:h=%d:format=nv12", h.scaler, w, ht)
}

// storedSize is the source's size as decoded, before display rotation.
func storedSize(m encoders.MediaInfo) (int, int) {
	if m.Rotation == 90 || m.Rotation == 270 {
		return m.Height, m.Width
	}
	return m.Width, m.Height
}

// pictureFilters is the hardware form of the package's pictureFilters: the
// chain from decoded source to planned frame, ending with frames on the
// GPU, ready for the encoder.
func (h *hardware) pictureFilters(v *encoders.VideoPlan, src encoders.MediaInfo) []string {
	if h.path == pathUpload {
		return append(pictureFilters(v, src), "format=nv12", h.upload)
	}
	if h.path == pathFull {
		f := []string{h.scale(v.Width, v.Height, v, src)}
		if v.Padded() {
			f = []string{h.scale(v.ScaleWidth, v.ScaleHeight, nil, src),
				fmt.Sprintf("%s=w=%d:h=%d:x=%d:y=%d:color=%s", h.pad, v.Width, v.Height, v.X, v.Y, v.Background)}
		}
		return append(f, fpsAfter(v, "setsar=1")...)
	}
	// Mixed: scale on the GPU, pad or crop the small frames on the CPU.
	f := []string{h.scale(v.ScaleWidth, v.ScaleHeight, nil, src), "hwdownload", "format=nv12"}
	switch {
	case v.Padded():
		f = append(f, fmt.Sprintf("pad=%d:%d:%d:%d:color=%s", v.Width, v.Height, v.X, v.Y, v.Background))
	case v.Cropped():
		f = append(f, fmt.Sprintf("crop=%d:%d:%d:%d", v.Width, v.Height, v.X, v.Y))
	}
	return append(fpsAfter(v, f...), h.upload)
}

// fpsAfter appends setsar=1 (unless given already) and the frame-rate
// change, which goes after scaling so no full-size frame is duplicated.
func fpsAfter(v *encoders.VideoPlan, f ...string) []string {
	if !slices.Contains(f, "setsar=1") {
		f = append(f, "setsar=1")
	}
	if v.FPS != "" {
		f = append(f, "fps="+v.FPS)
	}
	return f
}
