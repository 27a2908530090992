package encoders

import "fmt"

// Backend is a family of encoders: software (libx264 and friends) or one
// kind of hardware.
type Backend string

// The backends an agent can use.
const (
	BackendSoftware Backend = "software"
	BackendNVENC    Backend = "nvenc"
	BackendQSV      Backend = "qsv"
	BackendVAAPI    Backend = "vaapi"
)

// Backends lists every backend, software first.
var Backends = []Backend{BackendSoftware, BackendNVENC, BackendQSV, BackendVAAPI}

// encoderNames maps backend and codec to the ffmpeg encoder.
var encoderNames = map[Backend]map[string]string{
	BackendSoftware: {CodecH264: "libx264", CodecH265: "libx265", CodecVP9: "libvpx-vp9", CodecAV1: "libsvtav1"},
	BackendNVENC:    {CodecH264: "h264_nvenc", CodecH265: "hevc_nvenc", CodecAV1: "av1_nvenc"},
	BackendQSV:      {CodecH264: "h264_qsv", CodecH265: "hevc_qsv", CodecVP9: "vp9_qsv", CodecAV1: "av1_qsv"},
	BackendVAAPI:    {CodecH264: "h264_vaapi", CodecH265: "hevc_vaapi", CodecVP9: "vp9_vaapi", CodecAV1: "av1_vaapi"},
}

// EncoderName returns the ffmpeg encoder of a backend for a video codec, or
// "" when the backend has none for it (NVENC has no VP9 encoder).
func EncoderName(b Backend, codec string) string { return encoderNames[b][codec] }

// RateMode is how an encoder spends bits.
type RateMode string

// The rate-control modes a plan uses.
const (
	// RateQuality is constant quality: CRF for x264, x265, VP9 and SVT-AV1,
	// CQ for NVENC, global_quality for QSV, QP for VAAPI. MaxRate, when set,
	// caps it (capped CRF).
	RateQuality RateMode = "quality"
	// RateBitrate is capped VBR: an average of Bitrate, peaks up to MaxRate.
	RateBitrate RateMode = "bitrate"
)

// RateControl is the resolved rate control of one video encode.
type RateControl struct {
	Mode RateMode `json:"mode"`
	// Param names the quality parameter of the encoder ("crf", "cq",
	// "global_quality", "qp") and Value is its value, in quality mode.
	Param string `json:"param,omitempty"`
	Value int    `json:"value,omitempty"`
	// Bitrate is the average target, bits per second, in bitrate mode.
	Bitrate int64 `json:"bitrate,omitempty"`
	// MaxRate caps the peak rate over BufSize bits; 0 means uncapped.
	MaxRate int64 `json:"maxrate,omitempty"`
	BufSize int64 `json:"bufsize,omitempty"`
}

// qualityScale holds one encoder family's quality values, very_low first
// (docs/hardware.md §2.6).
type qualityScale struct {
	param  string
	values [5]int
}

var qualityScales = map[string]qualityScale{
	"libx264":    {"crf", [5]int{32, 28, 23, 20, 17}},
	"libx265":    {"crf", [5]int{34, 31, 28, 24, 21}},
	"libvpx-vp9": {"crf", [5]int{40, 35, 31, 28, 24}}, // at 1080p; see vp9HeightOffset
	"libsvtav1":  {"crf", [5]int{45, 40, 35, 30, 25}},
	"libaom-av1": {"crf", [5]int{40, 35, 30, 26, 22}},
	"nvenc":      {"cq", [5]int{39, 35, 29, 25, 21}},
	"qsv":        {"global_quality", [5]int{36, 32, 26, 22, 18}},
	"vaapi":      {"qp", [5]int{36, 32, 27, 24, 21}},
}

func scaleFor(encoder string) (qualityScale, bool) {
	if s, ok := qualityScales[encoder]; ok {
		return s, true
	}
	for _, fam := range []string{"nvenc", "qsv", "vaapi"} {
		if len(encoder) > len(fam) && encoder[len(encoder)-len(fam):] == fam {
			return qualityScales[fam], true
		}
	}
	return qualityScale{}, false
}

// vp9HeightOffset follows Google's VP9 VOD table, which lowers the CRF as
// the frame grows: the scale above is for 1080p.
func vp9HeightOffset(height int) int {
	switch {
	case height <= 240:
		return 6
	case height <= 360:
		return 5
	case height <= 480:
		return 3
	case height <= 720:
		return 1
	case height <= 1080:
		return 0
	case height <= 1440:
		return -3
	}
	return -6
}

// QualityRate returns constant-quality rate control for an encoder at a
// quality level and output height, capped at maxRate when it is not 0.
func QualityRate(encoder string, q Quality, height int, maxRate int64) (RateControl, error) {
	s, ok := scaleFor(encoder)
	if !ok {
		return RateControl{}, fmt.Errorf("no quality scale for encoder %s", encoder)
	}
	i := q.index()
	if i < 0 {
		i = DefaultQuality.index()
	}
	v := s.values[i]
	if encoder == "libvpx-vp9" {
		v = min(max(v+vp9HeightOffset(height), 0), 63)
	}
	rc := RateControl{Mode: RateQuality, Param: s.param, Value: v}
	if maxRate > 0 {
		rc.MaxRate, rc.BufSize = maxRate, 2*maxRate
	}
	return rc, nil
}

// BitrateRate returns capped VBR rate control averaging bitrate: peaks are
// held to the same rate over a buffer of two seconds' worth of bits.
func BitrateRate(bitrate int64) RateControl {
	return RateControl{Mode: RateBitrate, Bitrate: bitrate, MaxRate: bitrate, BufSize: 2 * bitrate}
}
