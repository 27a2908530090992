package ffmpeg

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/encoders"
)

// hlsAudioName is the folder of the audio rendition.
const hlsAudioName = "audio"

// hlsArgs encodes every rendition in one run: one decode, one filter graph
// split per rung, the same forced keyframe times in every rung, fMP4
// segments, and audio as its own rendition. dir receives one folder per
// rendition; WriteMaster writes the master playlist afterwards. hw is nil
// for software; hardware encoders get a fixed GOP instead of forced
// keyframes where they ignore those.
func hlsArgs(p encoders.Plan, dir string, hw *hardware) ([]string, error) {
	v, h := p.Video, p.HLS
	if v == nil && h != nil && len(h.Renditions) == 0 && p.Audio != nil {
		return hlsAudioArgs(p, dir), nil
	}
	if v == nil || h == nil || len(h.Renditions) == 0 {
		return nil, fmt.Errorf("adaptive plan missing")
	}
	base := pictureFilters(v, p.Source)
	if hw != nil && hw.path != pathUpload {
		base = hw.pictureFilters(v, p.Source)
	}
	n := len(h.Renditions)
	var g strings.Builder
	fmt.Fprintf(&g, "[0:v:0]%s,split=%d", strings.Join(base, ","), n)
	for i := range h.Renditions {
		fmt.Fprintf(&g, "[s%d]", i)
	}
	for i, r := range h.Renditions {
		fmt.Fprintf(&g, ";[s%d]%s[v%d]", i, strings.Join(rungFilters(v, r, hw), ","), i)
	}
	a := []string{"-filter_complex", g.String()}
	for i := range h.Renditions {
		a = append(a, "-map", fmt.Sprintf("[v%d]", i))
	}
	if p.Audio != nil {
		a = append(a, "-map", "0:a:0")
	}
	if hw != nil {
		a = append(a, hw.encoderArgs(v, "")...)
	} else {
		a = append(a, "-c:v", v.Encoder, "-preset", v.Preset, "-profile:v", "high")
	}
	srcFPS, _ := encoders.ParseRatio(p.Source.FrameRate)
	if v.FPS != "" {
		srcFPS, _ = encoders.ParseRatio(v.FPS)
	}
	for i, r := range h.Renditions {
		spec := ":v:" + strconv.Itoa(i)
		if hw != nil {
			a = append(a, hw.rateArgs(r.Rate, spec)...)
		} else {
			a = append(a, rateArgs(r.Rate, spec, true)...)
		}
		fps := srcFPS
		if r.FPS != "" {
			fps, _ = encoders.ParseRatio(r.FPS)
		}
		if fps > 0 {
			gop := strconv.Itoa(int(math.Round(fps * h.KeyframeSeconds)))
			a = append(a, "-g"+spec, gop, "-keyint_min"+spec, gop)
		}
	}
	// Keyframes at the same times in every rung, and no others from scene
	// cuts, so that every segment of every rung starts with an IDR frame.
	keyframes := fmt.Sprintf("expr:gte(t,n_forced*%s)", strconv.FormatFloat(h.KeyframeSeconds, 'f', -1, 64))
	if h.FirstFrame > 0 {
		// A run of the ladder split in time: the frames are counted from
		// the ladder's first, and the key frames before the run's are
		// counted as forced, so they fall where one run would put them.
		kf, err := runKeyframes(p)
		if err != nil {
			return nil, err
		}
		keyframes = kf
	}
	if hw != nil {
		a = append(a, hw.keyframeArgs(keyframes)...)
	} else {
		a = append(a, "-sc_threshold", "0", "-force_key_frames", keyframes)
	}
	if p.Audio != nil {
		a = append(a, audioStreamArgs(p.Audio, "")...)
	}
	var vsm []string
	for i, r := range h.Renditions {
		e := fmt.Sprintf("v:%d,name:%s", i, r.Name)
		if p.Audio != nil {
			e = fmt.Sprintf("v:%d,agroup:%s,name:%s", i, hlsAudioName, r.Name)
		}
		vsm = append(vsm, e)
	}
	if p.Audio != nil {
		vsm = append(vsm, fmt.Sprintf("a:0,agroup:%s,name:%s", hlsAudioName, hlsAudioName))
	}
	if p.Format == partFormat {
		// A run of one rendition (encoders.SplitLadder): its frames alone,
		// cut into segments with the other runs' at the stitch.
		return append(a, "-f", partFormat), nil
	}
	return append(a, hlsMuxArgs(h.SegmentSeconds, dir, vsm)...), nil
}

// hlsMuxArgs writes the streams mapped (as -var_stream_map names them)
// as fMP4 renditions of a ladder under dir, one folder each: segments of
// about seconds, cut at key frames, an init segment and a playlist.
func hlsMuxArgs(seconds float64, dir string, streams []string) []string {
	return []string{
		"-f", "hls",
		"-hls_time", strconv.FormatFloat(seconds, 'f', -1, 64),
		"-hls_playlist_type", "vod",
		"-hls_segment_type", "fmp4",
		"-hls_flags", "independent_segments",
		"-hls_fmp4_init_filename", "init.mp4",
		"-hls_segment_filename", filepath.Join(dir, "%v", "seg_%03d.m4s"),
		"-var_stream_map", strings.Join(streams, " "),
		filepath.Join(dir, "%v", "index.m3u8"),
	}
}

// runKeyframes is the -force_key_frames expression of a run of a ladder
// split in time, starting at frame h.FirstFrame of the source: a key frame
// on the first frame at or after each multiple of the key frame interval
// in the ladder's time, as gte(t,n_forced*K) gives the ladder in one run.
// It counts frames rather than reading timestamps, which a seek offsets.
func runKeyframes(p encoders.Plan) (string, error) {
	h := p.HLS
	num, den, ok := strings.Cut(p.Source.FrameRate, "/")
	if !ok {
		den = "1"
	}
	n, err1 := strconv.ParseInt(num, 10, 64)
	d, err2 := strconv.ParseInt(den, 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || d <= 0 || h.KeyframeSeconds <= 0 {
		return "", fmt.Errorf("a run of a ladder needs a constant frame rate, not %q", p.Source.FrameRate)
	}
	// The key frames before the run: one at each of 0, K, 2K, … before its
	// first frame, which falls on the next (SplitLadder cuts there).
	before := int64(math.Floor(float64(h.FirstFrame)*float64(d)/float64(n)/h.KeyframeSeconds + 1e-6))
	k := strconv.FormatFloat(h.KeyframeSeconds, 'f', -1, 64)
	return fmt.Sprintf("expr:gte((n+%d)*%d/%d,(n_forced+%d)*%s)", h.FirstFrame, d, n, before, k), nil
}

// hlsAudioArgs encodes the sound alone as the audio rendition of a
// ladder (the sound's part of a ladder fanned out): the same encoder,
// segments and playlist as hlsArgs gives it beside the picture.
func hlsAudioArgs(p encoders.Plan, dir string) []string {
	a := []string{"-map", "0:a:0", "-vn", "-sn", "-dn"}
	a = append(a, audioStreamArgs(p.Audio, "")...)
	return append(a, hlsMuxArgs(p.HLS.SegmentSeconds, dir, []string{"a:0,name:" + hlsAudioName})...)
}

// rungFilters turns the split top frame into one rendition: scaled (on the
// GPU when the top frame is there), at the rung's frame rate, in the
// encoder's pixel format (uploaded for a hardware encoder).
func rungFilters(v *encoders.VideoPlan, r encoders.Rendition, hw *hardware) []string {
	resize := r.Width != v.Width || r.Height != v.Height
	var f []string
	if hw != nil && hw.path != pathUpload {
		if resize {
			f = append(f, fmt.Sprintf("%s=w=%d:h=%d:format=nv12", hw.scaler, r.Width, r.Height))
		}
		if r.FPS != "" {
			f = append(f, "fps="+r.FPS)
		}
		if len(f) == 0 {
			f = append(f, "null")
		}
		return f
	}
	if resize {
		f = append(f, fmt.Sprintf("scale=%d:%d", r.Width, r.Height), "setsar=1")
	}
	if r.FPS != "" {
		f = append(f, "fps="+r.FPS)
	}
	if hw != nil {
		return append(f, "format=nv12", hw.upload)
	}
	return append(f, "format="+v.PixelFormat)
}
