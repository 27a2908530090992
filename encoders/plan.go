package encoders

import (
	"fmt"
	"math"
	"strconv"

	"github.com/ittybit-oss/ittybit"
)

// Plan is a task's options resolved against the probe of its source: what
// exactly to make and with which encoder. encoders/ffmpeg turns a Plan into
// an argument list. Its JSON is what the encode step reports as its options.
type Plan struct {
	Kind    Kind    `json:"kind"`
	Format  string  `json:"format"`
	Backend Backend `json:"backend"`
	// Encoder is the ffmpeg encoder of the main stream ("libx264",
	// "libmp3lame", "libwebp").
	Encoder string  `json:"encoder"`
	Quality Quality `json:"quality"`
	// Start is where reading starts, in seconds of the source (for an
	// image, the frame time).
	Start float64 `json:"start,omitempty"`
	// Duration is how long the output runs, in seconds, when the source's
	// length is known or end was given; 0 otherwise.
	Duration float64 `json:"duration,omitempty"`
	// Trim is set when the output must stop at Start+Duration rather than
	// at the end of the source.
	Trim bool `json:"trim,omitempty"`

	Video *VideoPlan `json:"video,omitempty"`
	Audio *AudioPlan `json:"audio,omitempty"`
	HLS   *HLSPlan   `json:"hls,omitempty"`

	// Threads bounds the threads of a software encode (decoding, filters
	// and the encoder) so that an operator can run several encodes per
	// CPU host; 0 leaves it to ffmpeg. The agent sets it (--encode-threads).
	Threads int `json:"threads,omitempty"`
	// Part, when set, is the part of a split encode this plan makes (see
	// Split): a run of the picture's frames, or the whole sound track.
	Part *Part `json:"part,omitempty"`

	// Source is the probe the plan was made from.
	Source MediaInfo `json:"source"`
}

// VideoPlan is the picture side of a plan: for video and adaptive outputs
// the video stream, for images the single frame.
type VideoPlan struct {
	Codec   string `json:"codec"`   // h264, h265, vp9, av1; for images the format
	Encoder string `json:"encoder"` // the ffmpeg encoder
	Geometry
	// FPS is the output frame rate as a fraction ("30000/1001") when it
	// changes; "" keeps the source's.
	FPS         string      `json:"fps,omitempty"`
	PixelFormat string      `json:"pixel_format,omitempty"`
	Preset      string      `json:"preset,omitempty"`
	Rate        RateControl `json:"rate_control,omitzero"`
}

// AudioPlan is the sound side of a plan.
type AudioPlan struct {
	Codec   string `json:"codec"`   // aac, opus, mp3, vorbis, flac, pcm
	Encoder string `json:"encoder"` // aac, libopus, libmp3lame, libvorbis, flac, pcm_s16le
	// Bitrate is the target in bits per second; 0 when VBRQuality or a
	// lossless codec decides.
	Bitrate int64 `json:"bitrate,omitempty"`
	// VBRQuality is the encoder's own quality scale (-q:a) for MP3 and
	// Vorbis; nil when unused.
	VBRQuality *int `json:"vbr_quality,omitempty"`
	// Channels downmixes to this many channels; 0 keeps the source's.
	Channels int `json:"channels,omitempty"`
}

// NewPlan resolves a validated spec against the probe of its source for
// one backend. It fails with ittybit.ErrUnsupportedMedia when the source cannot
// make the output (no picture for video, start past the end, a size beyond
// the limits), and with ittybit.ErrEncodeFailed when the backend has no encoder for
// the codec.
func NewPlan(s Spec, m MediaInfo, b Backend) (Plan, error) {
	if b == "" {
		b = BackendSoftware
	}
	o := Defaults(s.Kind, s.Options, s.Output)
	p := Plan{Kind: s.Kind, Format: o.Format, Backend: b, Quality: o.Quality, Source: m}
	if err := p.resolveTime(o, m); err != nil {
		return Plan{}, err
	}
	var err error
	switch s.Kind {
	case KindVideo:
		err = p.planVideo(o, m, b)
	case KindAudio:
		err = p.planAudio(o, m)
	case KindImage:
		err = p.planImage(o, m)
	case KindAdaptive:
		err = p.planAdaptive(o, m, b)
	default:
		err = ittybit.Errorf(ittybit.ErrInternal, "unknown kind %q", s.Kind)
	}
	if err != nil {
		return Plan{}, err
	}
	return p, nil
}

// resolveTime sets Start, Duration and Trim, refusing a start past the end.
func (p *Plan) resolveTime(o Options, m MediaInfo) error {
	if o.Start != nil {
		p.Start = *o.Start
	}
	if p.Kind == KindImage {
		switch {
		case m.Still && p.Start > 0:
			return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "start %s s is past the end of the input, a still image; use start 0", num(p.Start))
		case !m.Still && m.Duration > 0 && p.Start >= m.Duration:
			return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "start %s s is past the end of the input, which lasts %.3f s", num(p.Start), m.Duration)
		}
		// The frame shown at a time after the last frame began is the last
		// frame: seek to it, since a seek past it finds nothing.
		if vd := m.videoDuration(); vd > 0 && m.FPS > 0 && p.Start > vd-1/m.FPS {
			p.Start = math.Max(0, math.Floor((vd-1/m.FPS)*1000)/1000)
		}
		return nil
	}
	if m.Duration > 0 && p.Start >= m.Duration {
		return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "start %s s is past the end of the input, which lasts %.3f s", num(p.Start), m.Duration)
	}
	end := m.Duration
	if o.End != nil && (m.Duration == 0 || *o.End < m.Duration) {
		end = *o.End
		p.Trim = true
	}
	if end > 0 {
		p.Duration = end - p.Start
	}
	return nil
}

func (p *Plan) planVideo(o Options, m MediaInfo, b Backend) error {
	if !m.HasVideo || m.Still {
		what := "no video stream"
		if m.Still {
			what = "a still image, not a video"
		}
		return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the input has %s; a video task needs a moving picture (use kind image for stills, audio for sound)", what)
	}
	enc := EncoderName(b, o.Codec)
	if enc == "" {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "the %s backend has no %s encoder", b, o.Codec)
	}
	g, err := resolveGeometry(m.Width, m.Height, m.sar(), o.Width, o.Height, o.Fit, o.Position, o.Background, true)
	if err != nil {
		return err
	}
	var rc RateControl
	if o.Bitrate != nil {
		rc = BitrateRate(*o.Bitrate)
	} else if rc, err = QualityRate(enc, o.Quality, g.Height, 0); err != nil {
		return ittybit.Errorf(ittybit.ErrInternal, "%v", err)
	}
	p.Encoder = enc
	p.Video = &VideoPlan{
		Codec: o.Codec, Encoder: enc, Geometry: g, FPS: fpsChange(o.FPS, m),
		PixelFormat: "yuv420p", Preset: defaultPreset(enc), Rate: rc,
	}
	if m.HasAudio {
		p.Audio = videoAudio(AudioCodecFor(o.Format), o.Quality, m)
	}
	return nil
}

// fpsChange returns the output frame rate fraction when fps asks for one
// other than the source's, or "".
func fpsChange(fps *float64, m MediaInfo) string {
	if fps == nil {
		return ""
	}
	if src, ok := ParseRatio(m.FrameRate); ok && math.Abs(src-*fps) < 0.001 {
		return ""
	}
	return FrameRateFraction(*fps)
}

// defaultPreset is the speed/size trade-off used per encoder: the fast end
// of good, as a fleet encoding on demand wants.
func defaultPreset(encoder string) string {
	switch encoder {
	case "libx264", "libx265":
		return "fast"
	case "libvpx-vp9":
		return "4" // -cpu-used
	case "libsvtav1":
		return "8"
	case "h264_nvenc", "hevc_nvenc", "av1_nvenc":
		return "p5"
	case "h264_qsv", "hevc_qsv", "vp9_qsv", "av1_qsv":
		return "medium"
	}
	return ""
}

// audioLevels holds per-quality settings, very_low first.
var (
	aacBitrates  = [5]int64{64_000, 96_000, 128_000, 192_000, 256_000}
	opusBitrates = [5]int64{48_000, 64_000, 96_000, 128_000, 192_000}
	mp3VBR       = [5]int{7, 5, 4, 2, 0} // libmp3lame -q:a: lower is better
	vorbisVBR    = [5]int{1, 3, 4, 6, 8} // libvorbis -q:a: higher is better
	// The soundtrack of a video or a stream is a little leaner.
	videoAACBitrates  = [5]int64{96_000, 128_000, 128_000, 160_000, 192_000}
	videoOpusBitrates = [5]int64{64_000, 96_000, 96_000, 128_000, 160_000}
)

func qi(q Quality) int {
	if i := q.index(); i >= 0 {
		return i
	}
	return DefaultQuality.index()
}

// videoAudio is the soundtrack of a video or HLS output.
func videoAudio(codec string, q Quality, m MediaInfo) *AudioPlan {
	a := &AudioPlan{Codec: codec, Encoder: "aac", Bitrate: videoAACBitrates[qi(q)]}
	if codec == "opus" {
		a.Encoder, a.Bitrate = "libopus", videoOpusBitrates[qi(q)]
	}
	if m.AudioChannels > 2 {
		a.Channels = 2
	}
	return a
}

func (p *Plan) planAudio(o Options, m MediaInfo) error {
	if !m.HasAudio {
		return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the input has no audio stream; an audio task needs sound")
	}
	i := qi(o.Quality)
	a := &AudioPlan{}
	switch o.Format {
	case "mp3":
		a.Codec, a.Encoder = "mp3", "libmp3lame"
		v := mp3VBR[i]
		a.VBRQuality = &v
	case "aac":
		a.Codec, a.Encoder, a.Bitrate = "aac", "aac", aacBitrates[i]
	case "ogg":
		a.Codec, a.Encoder = "vorbis", "libvorbis"
		v := vorbisVBR[i]
		a.VBRQuality = &v
	case "opus":
		a.Codec, a.Encoder, a.Bitrate = "opus", "libopus", opusBitrates[i]
	case "wav":
		a.Codec, a.Encoder = "pcm", "pcm_s16le"
		if m.AudioBits > 16 {
			a.Encoder = "pcm_s24le"
		}
	case "flac":
		a.Codec, a.Encoder = "flac", "flac"
	default:
		return ittybit.Errorf(ittybit.ErrInternal, "no audio encoder for format %q", o.Format)
	}
	if o.Bitrate != nil {
		a.Bitrate, a.VBRQuality = *o.Bitrate, nil
	}
	if m.AudioChannels > 2 && !Lossless(o.Format) {
		a.Channels = 2
	}
	p.Encoder = a.Encoder
	p.Audio = a
	return nil
}

// imageEncoders maps image formats to ffmpeg encoders and their quality
// scale, very_low first.
var imageEncoders = map[string]struct {
	encoder string
	param   string
	values  []int
}{
	"jpeg": {"mjpeg", "qscale", []int{15, 10, 5, 3, 2}},
	"png":  {"png", "", nil},
	"webp": {"libwebp", "quality", []int{40, 60, 75, 85, 95}},
	"gif":  {"gif", "", nil},
	"avif": {"libaom-av1", "crf", []int{45, 38, 30, 24, 18}},
}

func (p *Plan) planImage(o Options, m MediaInfo) error {
	if !m.HasVideo {
		return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the input has no picture; an image task needs a video or an image")
	}
	ie, ok := imageEncoders[o.Format]
	if !ok {
		return ittybit.Errorf(ittybit.ErrInternal, "no image encoder for format %q", o.Format)
	}
	// Images take any size, odd ones too.
	g, err := resolveGeometry(m.Width, m.Height, m.sar(), o.Width, o.Height, o.Fit, o.Position, o.Background, false)
	if err != nil {
		return err
	}
	v := &VideoPlan{Codec: o.Format, Encoder: ie.encoder, Geometry: g}
	if ie.param != "" {
		v.Rate = RateControl{Mode: RateQuality, Param: ie.param, Value: ie.values[qi(o.Quality)]}
	}
	switch o.Format {
	case "jpeg":
		v.PixelFormat = "yuvj420p"
	case "avif":
		v.PixelFormat, v.Preset = "yuv420p", "6"
	}
	p.Encoder = ie.encoder
	p.Video = v
	p.Duration = 0
	return nil
}

// String is a one-line summary for logs and the CLI.
func (p Plan) String() string {
	s := string(p.Kind) + " " + p.Format + " via " + p.Encoder
	if p.Video != nil {
		s += " " + strconv.Itoa(p.Video.Width) + "x" + strconv.Itoa(p.Video.Height)
	}
	if p.Duration > 0 {
		s += fmt.Sprintf(" %.3fs", p.Duration)
	}
	return s
}
