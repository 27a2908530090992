package encoders

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MediaInfo is what a probe learned of a source file. Its JSON is the probe
// step's output object of the contract. Width and Height are as displayed:
// for a source with rotation metadata of 90 or 270 degrees they are the
// stored height and width.
type MediaInfo struct {
	Format   string  `json:"format"`            // demuxer name, e.g. "mov", "matroska", "mp3"
	Duration float64 `json:"duration"`          // seconds; 0 when unknown
	Width    int     `json:"width,omitempty"`   // displayed width, pixels
	Height   int     `json:"height,omitempty"`  // displayed height, pixels
	FPS      float64 `json:"fps,omitempty"`     // frames per second
	Codecs   Codecs  `json:"codecs"`            // codec of the first video and audio stream
	HasAudio bool    `json:"has_audio"`         // an audio stream is present
	HasVideo bool    `json:"has_video"`         // a picture stream is present (a still image counts)
	Filesize int64   `json:"filesize"`          // bytes
	Rotation int     `json:"rotation"`          // clockwise degrees applied for display: 0, 90, 180, 270
	Bitrate  int64   `json:"bitrate,omitempty"` // overall bits per second
	Frames   int64   `json:"frames,omitempty"`  // video frames, as the container says or as counted
	// FramesCounted is set when Frames was counted from the file's packets
	// (the agent counts a long video's, for a split), not read from its
	// header.
	FramesCounted bool `json:"frames_counted,omitempty"`
	// VideoDuration is the length of the picture stream in seconds, when
	// known; audio may run longer.
	VideoDuration float64 `json:"video_duration,omitempty"`
	Still         bool    `json:"still,omitempty"` // the picture is a single image, not a video
	// VariableFrameRate is set when the picture's frames are not evenly
	// spaced (its average and base frame rates differ).
	VariableFrameRate bool `json:"variable_frame_rate,omitempty"`
	// VideoStart is how long after the file's start the picture's first
	// frame comes, in seconds (the sound may start first).
	VideoStart float64 `json:"video_start,omitempty"`
	PixelFmt   string  `json:"pixel_format,omitempty"`
	// FrameRate is the exact frame rate as a fraction ("30000/1001").
	FrameRate string `json:"frame_rate,omitempty"`
	// SampleAspect is the pixel aspect ratio ("1:1"; "32:27" for anamorphic).
	SampleAspect string `json:"sample_aspect_ratio,omitempty"`
	// AudioChannels and SampleRate describe the first audio stream.
	AudioChannels int `json:"audio_channels,omitempty"`
	SampleRate    int `json:"sample_rate,omitempty"`
	// AudioBits is the sample depth of a lossless audio source, 0 otherwise.
	AudioBits int `json:"audio_bits,omitempty"`
}

// MaxSourcePixels is the largest picture (width × height) of a source that
// ittybit decodes: 16384×8192, 134 megapixels, whose RGBA frame alone takes
// 512 MiB. A larger picture, or a file that claims one (an image bomb: a
// few bytes of PNG header announcing 100000×100000), is refused when
// probed, before anything decodes it.
const MaxSourcePixels = 16384 * 8192

// Codecs names the codecs of a source's first video and audio streams.
type Codecs struct {
	Video string `json:"video,omitempty"`
	Audio string `json:"audio,omitempty"`
}

// videoDuration returns how long the picture lasts, falling back to the
// container's duration.
func (m MediaInfo) videoDuration() float64 {
	if m.VideoDuration > 0 {
		return m.VideoDuration
	}
	return m.Duration
}

// sar returns the sample (pixel) aspect ratio, 1 when unknown.
func (m MediaInfo) sar() float64 {
	r, ok := ParseRatio(m.SampleAspect)
	if !ok || r <= 0 {
		return 1
	}
	if m.Rotation == 90 || m.Rotation == 270 {
		return 1 / r
	}
	return r
}

// ParseRatio reads "a/b" or "a:b" or a plain number. It reports false for
// an empty, zero-denominator or malformed value.
func ParseRatio(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	sep := strings.IndexAny(s, "/:")
	if sep < 0 {
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	a, err1 := strconv.ParseFloat(s[:sep], 64)
	b, err2 := strconv.ParseFloat(s[sep+1:], 64)
	if err1 != nil || err2 != nil || b == 0 || math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return 0, false
	}
	return a / b, true
}

// FrameRateFraction returns the exact form of a frame rate: NTSC rates
// (23.976, 29.97, 59.94) become their x/1001 fractions, whole numbers stay.
func FrameRateFraction(fps float64) string {
	for _, base := range []int{24, 30, 48, 60} {
		ntsc := float64(base) * 1000 / 1001
		if math.Abs(fps-ntsc) < 0.006 {
			return fmt.Sprintf("%d/1001", base*1000)
		}
	}
	if fps == math.Trunc(fps) {
		return strconv.Itoa(int(fps))
	}
	return strconv.FormatFloat(fps, 'f', -1, 64)
}
