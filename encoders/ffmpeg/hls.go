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
// rendition; WriteMaster writes the master playlist afterwards.
func hlsArgs(p encoders.Plan, dir string) ([]string, error) {
	v, h := p.Video, p.HLS
	if v == nil || h == nil || len(h.Renditions) == 0 {
		return nil, fmt.Errorf("adaptive plan missing")
	}
	base := pictureFilters(v, p.Source)
	n := len(h.Renditions)
	var g strings.Builder
	fmt.Fprintf(&g, "[0:v:0]%s,split=%d", strings.Join(base, ","), n)
	for i := range h.Renditions {
		fmt.Fprintf(&g, "[s%d]", i)
	}
	for i, r := range h.Renditions {
		var f []string
		if r.Width != v.Width || r.Height != v.Height {
			f = append(f, fmt.Sprintf("scale=%d:%d", r.Width, r.Height), "setsar=1")
		}
		if r.FPS != "" {
			f = append(f, "fps="+r.FPS)
		}
		f = append(f, "format="+v.PixelFormat)
		fmt.Fprintf(&g, ";[s%d]%s[v%d]", i, strings.Join(f, ","), i)
	}
	a := []string{"-filter_complex", g.String()}
	for i := range h.Renditions {
		a = append(a, "-map", fmt.Sprintf("[v%d]", i))
	}
	if p.Audio != nil {
		a = append(a, "-map", "0:a:0")
	}
	a = append(a, "-c:v", v.Encoder, "-preset", v.Preset, "-profile:v", "high")
	srcFPS, _ := encoders.ParseRatio(p.Source.FrameRate)
	if v.FPS != "" {
		srcFPS, _ = encoders.ParseRatio(v.FPS)
	}
	for i, r := range h.Renditions {
		spec := ":v:" + strconv.Itoa(i)
		a = append(a, rateArgs(r.Rate, spec, true)...)
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
	a = append(a, "-sc_threshold", "0", "-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%s)", strconv.FormatFloat(h.KeyframeSeconds, 'f', -1, 64)))
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
	a = append(a,
		"-f", "hls",
		"-hls_time", strconv.FormatFloat(h.SegmentSeconds, 'f', -1, 64),
		"-hls_playlist_type", "vod",
		"-hls_segment_type", "fmp4",
		"-hls_flags", "independent_segments",
		"-hls_fmp4_init_filename", "init.mp4",
		"-hls_segment_filename", filepath.Join(dir, "%v", "seg_%03d.m4s"),
		"-var_stream_map", strings.Join(vsm, " "),
		filepath.Join(dir, "%v", "index.m3u8"),
	)
	return a, nil
}
