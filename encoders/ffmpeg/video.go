package ffmpeg

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/encoders"
)

// pictureFilters returns the software filter chain that turns the decoded
// (already auto-rotated) source into the planned frame: scale, then pad
// (contain) or crop (cover), square pixels, then the frame rate.
func pictureFilters(v *encoders.VideoPlan, src encoders.MediaInfo) []string {
	var f []string
	sameSize := v.ScaleWidth == src.Width && v.ScaleHeight == src.Height
	if !sameSize || !squarePixels(src) {
		f = append(f, fmt.Sprintf("scale=%d:%d", v.ScaleWidth, v.ScaleHeight))
	}
	switch {
	case v.Padded():
		f = append(f, fmt.Sprintf("pad=%d:%d:%d:%d:color=%s", v.Width, v.Height, v.X, v.Y, v.Background))
	case v.Cropped():
		f = append(f, fmt.Sprintf("crop=%d:%d:%d:%d", v.Width, v.Height, v.X, v.Y))
	}
	f = append(f, "setsar=1")
	if v.FPS != "" {
		// After scaling: a frame-rate change on the full-size picture would
		// duplicate frames before they are made small.
		f = append(f, "fps="+v.FPS)
	}
	return f
}

func squarePixels(m encoders.MediaInfo) bool {
	r, ok := encoders.ParseRatio(m.SampleAspect)
	return !ok || r == 1
}

// videoArgs renders a video plan; hw is nil for software.
func videoArgs(p encoders.Plan, hw *hardware) ([]string, error) {
	v := p.Video
	if v == nil {
		return nil, fmt.Errorf("video plan missing")
	}
	var a []string
	if hw != nil {
		a = append([]string{"-map", "0:v:0", "-vf", strings.Join(hw.pictureFilters(v, p.Source), ",")}, hw.encoderArgs(v, "")...)
		a = append(a, hw.rateArgs(v.Rate, "")...)
	} else {
		f := append(pictureFilters(v, p.Source), "format="+v.PixelFormat)
		a = []string{"-map", "0:v:0", "-vf", strings.Join(f, ",")}
		codec, err := videoCodecArgs(v, "", p.Threads)
		if err != nil {
			return nil, err
		}
		a = append(a, codec...)
	}
	if p.Audio != nil {
		a = append(a, "-map", "0:a:0")
		a = append(a, audioStreamArgs(p.Audio, "")...)
	} else {
		a = append(a, "-an")
	}
	if v.FPS == "" {
		// Every source frame once, at its own time: MP4's constant-rate
		// timing would repeat the first frame when the sound starts
		// before the picture, and repeat or drop frames of a variable-rate
		// source. A frame-rate option goes through the fps filter instead.
		a = append(a, "-fps_mode", "passthrough")
	}
	a = append(a, "-sn", "-dn")
	m, err := containerArgs(p.Format)
	if err != nil {
		return nil, err
	}
	return append(a, m...), nil
}

// containerArgs are the muxer of a video format, with the index up front
// for MP4 and MOV, so players start before the download ends.
func containerArgs(format string) ([]string, error) {
	m, err := muxer(format)
	if err != nil {
		return nil, err
	}
	if format == "mp4" || format == "mov" {
		return append([]string{"-movflags", "+faststart"}, m...), nil
	}
	return m, nil
}

// videoCodecArgs returns the encoder, preset and rate-control arguments of
// a software video encoder; spec is a stream specifier suffix such as ":0"
// or "" for all video streams.
//
// threads, when above 0, bounds the encoder's threads where -threads does
// not reach: x265's thread pool, SVT-AV1's logical processors.
func videoCodecArgs(v *encoders.VideoPlan, spec string, threads int) ([]string, error) {
	a := []string{"-c:v" + spec, v.Encoder}
	rc := v.Rate
	switch v.Encoder {
	case "libx264":
		a = append(a, "-preset"+spec, v.Preset, "-profile:v"+spec, "high")
		a = append(a, rateArgs(rc, spec, true)...)
	case "libx265":
		params := "log-level=error"
		if threads > 0 {
			params += ":pools=" + strconv.Itoa(threads)
		}
		a = append(a, "-preset"+spec, v.Preset, "-tag:v"+spec, "hvc1", "-x265-params"+spec, params)
		a = append(a, rateArgs(rc, spec, true)...)
	case "libvpx-vp9":
		a = append(a, "-deadline"+spec, "good", "-cpu-used"+spec, v.Preset, "-row-mt"+spec, "1")
		if rc.Mode == encoders.RateQuality {
			// Constant quality in libvpx needs a zero target bitrate.
			a = append(a, "-crf"+spec, strconv.Itoa(rc.Value), "-b:v"+spec, "0")
			if rc.MaxRate > 0 {
				a = append(a, "-maxrate"+spec, kbits(rc.MaxRate), "-bufsize"+spec, kbits(rc.BufSize))
			}
		} else {
			a = append(a, rateArgs(rc, spec, true)...)
		}
	case "libsvtav1":
		a = append(a, "-preset"+spec, v.Preset)
		if threads > 0 {
			a = append(a, "-svtav1-params"+spec, "lp="+strconv.Itoa(threads))
		}
		// SVT-AV1 treats maxrate = bitrate as CBR, which wants low-delay
		// prediction: give it the average target alone (VBR).
		a = append(a, rateArgs(rc, spec, false)...)
	default:
		return nil, fmt.Errorf("no software arguments for encoder %q", v.Encoder)
	}
	return a, nil
}

// rateArgs renders rate control for the CRF-style software encoders.
func rateArgs(rc encoders.RateControl, spec string, capped bool) []string {
	var a []string
	switch rc.Mode {
	case encoders.RateQuality:
		a = append(a, "-"+rc.Param+spec, strconv.Itoa(rc.Value))
	case encoders.RateBitrate:
		a = append(a, "-b:v"+spec, kbits(rc.Bitrate))
	}
	if capped && rc.MaxRate > 0 {
		a = append(a, "-maxrate"+spec, kbits(rc.MaxRate), "-bufsize"+spec, kbits(rc.BufSize))
	}
	return a
}
