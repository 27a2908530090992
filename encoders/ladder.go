package encoders

import (
	"math"
	"strconv"

	"github.com/ittybit-oss/ittybit"
)

// HLSPlan is the adaptive side of a plan: the renditions of the ladder,
// all cut at the same keyframes.
type HLSPlan struct {
	// SegmentSeconds is the target segment length (Apple: 6 s).
	SegmentSeconds float64 `json:"segment_seconds"`
	// KeyframeSeconds is the keyframe interval, the same in every
	// rendition so that players can switch at any segment (Apple: 2 s).
	KeyframeSeconds float64     `json:"keyframe_seconds"`
	Renditions      []Rendition `json:"renditions"`
	// FirstFrame is the index of the first frame encoded in the ladder's
	// frames: non-zero for a run of a ladder split in time (SplitLadder),
	// whose key frames fall where the ladder's would, not on its own times.
	FirstFrame int64 `json:"first_frame,omitempty"`
}

// Rendition is one rung of an HLS ladder.
type Rendition struct {
	Name   string `json:"name"` // "720p": also its folder
	Width  int    `json:"width"`
	Height int    `json:"height"`
	// FPS is the rendition's frame rate fraction when it is lower than the
	// source's (small rungs of 50/60 fps sources run at half rate).
	FPS  string      `json:"fps,omitempty"`
	Rate RateControl `json:"rate_control"`
}

// Ladder parameters.
const (
	hlsSegmentSeconds  = 6
	hlsKeyframeSeconds = 2
	maxRenditions      = 5
	// rungGap: a standard rung joins the ladder only when it is this much
	// smaller than the one above, so no two rungs are near duplicates.
	rungGap = 0.9
	// refBitrate is the peak bitrate of a 1080p30 H.264 rung at medium
	// quality; other sizes scale by pixel count to the power 0.9.
	refBitrate = 6_000_000
)

// rungHeights are the standard ladder heights (Apple's authoring spec,
// 16:9), largest first.
var rungHeights = []int{2160, 1440, 1080, 720, 540, 360, 234}

// qualityBitrateScale scales the ladder's peak rates by quality level.
var qualityBitrateScale = [5]float64{0.6, 0.8, 1, 1.25, 1.5}

// rungBitrate is the peak bitrate of a rendition of w×h pixels at fps.
func rungBitrate(w, h int, fps float64, q Quality) int64 {
	px := float64(w*h) / (1920 * 1080)
	b := refBitrate * math.Pow(px, 0.9) * qualityBitrateScale[qi(q)]
	if fps > 30 {
		b *= math.Pow(fps/30, 0.6)
	}
	// Round to whole kilobits.
	return max(int64(math.Round(b/1000))*1000, 100_000)
}

func (p *Plan) planAdaptive(o Options, m MediaInfo, b Backend) error {
	if !m.HasVideo || m.Still {
		return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the input has no moving picture; an adaptive stream needs a video")
	}
	const codec = CodecH264 // HLS's universal codec
	enc := EncoderName(b, codec)
	if enc == "" {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "the %s backend has no %s encoder", b, codec)
	}
	top, err := resolveGeometry(m.Width, m.Height, m.sar(), o.Width, o.Height, o.Fit, o.Position, o.Background, true)
	if err != nil {
		return err
	}
	srcFPS, _ := ParseRatio(m.FrameRate)
	if srcFPS == 0 {
		srcFPS = m.FPS
	}
	fps := FrameRateFraction(srcFPS)
	if srcFPS > 60 {
		fps, srcFPS = "60", 60
	}
	h := &HLSPlan{SegmentSeconds: hlsSegmentSeconds, KeyframeSeconds: hlsKeyframeSeconds}
	aspect := float64(top.Width) / float64(top.Height)
	addRung := func(w, hgt int) error {
		r := Rendition{Name: strconv.Itoa(hgt) + "p", Width: w, Height: hgt}
		rfps := srcFPS
		if hgt <= 480 && srcFPS > 30 {
			rfps = srcFPS / 2
			r.FPS = FrameRateFraction(rfps)
		}
		rc, err := QualityRate(enc, o.Quality, hgt, rungBitrate(w, hgt, rfps, o.Quality))
		if err != nil {
			return ittybit.Errorf(ittybit.ErrInternal, "%v", err)
		}
		r.Rate = rc
		h.Renditions = append(h.Renditions, r)
		return nil
	}
	if err := addRung(top.Width, top.Height); err != nil {
		return err
	}
	for _, rh := range rungHeights {
		if len(h.Renditions) == maxRenditions {
			break
		}
		if float64(rh) >= rungGap*float64(h.Renditions[len(h.Renditions)-1].Height) {
			continue
		}
		if err := addRung(roundSize(float64(rh)*aspect, true), rh); err != nil {
			return err
		}
	}
	p.Encoder = enc
	p.Video = &VideoPlan{
		Codec: codec, Encoder: enc, Geometry: top, PixelFormat: "yuv420p",
		Preset: defaultPreset(enc), FPS: fpsIfCapped(fps, m),
	}
	p.HLS = h
	if m.HasAudio {
		p.Audio = videoAudio("aac", o.Quality, m)
		p.Audio.Channels = 2 // stereo AAC, as Apple requires
	}
	return nil
}

// fpsIfCapped returns fps when it differs from the source's rate.
func fpsIfCapped(fps string, m MediaInfo) string {
	if fps == m.FrameRate || fps == FrameRateFraction(m.FPS) {
		return ""
	}
	return fps
}
