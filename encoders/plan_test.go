package encoders

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
)

// media is a probe of a 1920×1080 30 fps clip with stereo sound.
func media() MediaInfo {
	return MediaInfo{
		Format: "mov", Duration: 10, Width: 1920, Height: 1080, FPS: 30, FrameRate: "30/1",
		Codecs: Codecs{Video: "h264", Audio: "aac"}, HasVideo: true, HasAudio: true,
		AudioChannels: 2, SampleRate: 48000, SampleAspect: "1:1",
	}
}

func mustPlan(tb testing.TB, kind Kind, options string, m MediaInfo) Plan {
	tb.Helper()
	var o Options
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		tb.Fatal(err)
	}
	s := Spec{Kind: kind, Input: "https://example.com/a.mov", Options: o}
	if err := Validate(s, Policy{}); err != nil {
		tb.Fatalf("Validate(%s): %v", options, err)
	}
	p, err := NewPlan(s, m, BackendSoftware)
	if err != nil {
		tb.Fatalf("NewPlan(%s): %v", options, err)
	}
	return p
}

func TestGeometry(t *testing.T) {
	tests := []struct {
		name    string
		w, h    int
		sar     float64
		width   *Dimension
		height  *Dimension
		fit     string
		pos     string
		even    bool
		want    Geometry
		wantErr bool
	}{
		{name: "keep", w: 1920, h: 1080, even: true, want: Geometry{Width: 1920, Height: 1080, ScaleWidth: 1920, ScaleHeight: 1080, Fit: FitFill}},
		{name: "odd source rounds down to even", w: 721, h: 405, even: true, want: Geometry{Width: 720, Height: 404, ScaleWidth: 720, ScaleHeight: 404, Fit: FitFill}},
		{name: "odd source kept for images", w: 721, h: 405, want: Geometry{Width: 721, Height: 405, ScaleWidth: 721, ScaleHeight: 405, Fit: FitFill}},
		{name: "width keeps aspect", w: 1920, h: 1080, width: Px(1280), even: true, want: Geometry{Width: 1280, Height: 720, ScaleWidth: 1280, ScaleHeight: 720, Fit: FitFill}},
		{name: "height keeps aspect", w: 1920, h: 1080, height: Px(480), even: true, want: Geometry{Width: 854, Height: 480, ScaleWidth: 854, ScaleHeight: 480, Fit: FitFill}},
		{name: "percent", w: 1920, h: 1080, width: Pct(50), even: true, want: Geometry{Width: 960, Height: 540, ScaleWidth: 960, ScaleHeight: 540, Fit: FitFill}},
		{name: "both percent", w: 721, h: 405, width: Pct(50), height: Pct(25), fit: FitFill, even: true, want: Geometry{Width: 360, Height: 102, ScaleWidth: 360, ScaleHeight: 102, Fit: FitFill}},
		{name: "anamorphic", w: 720, h: 480, sar: 32.0 / 27, even: true, want: Geometry{Width: 854, Height: 480, ScaleWidth: 854, ScaleHeight: 480, Fit: FitFill}},
		{name: "contain pads top and bottom", w: 1920, h: 1080, width: Px(640), height: Px(640), fit: FitContain, pos: "center", even: true,
			want: Geometry{Width: 640, Height: 640, ScaleWidth: 640, ScaleHeight: 360, Fit: FitContain, X: 0, Y: 140, Background: "#000000"}},
		{name: "contain at bottom", w: 1920, h: 1080, width: Px(640), height: Px(640), fit: FitContain, pos: "bottom", even: true,
			want: Geometry{Width: 640, Height: 640, ScaleWidth: 640, ScaleHeight: 360, Fit: FitContain, X: 0, Y: 280, Background: "#000000"}},
		{name: "contain right of a portrait", w: 1080, h: 1920, width: Px(1280), height: Px(720), fit: FitContain, pos: "right", even: true,
			want: Geometry{Width: 1280, Height: 720, ScaleWidth: 404, ScaleHeight: 720, Fit: FitContain, X: 876, Y: 0, Background: "#000000"}},
		{name: "contain same aspect has no bars", w: 1920, h: 1080, width: Px(1280), height: Px(720), fit: FitContain, pos: "center", even: true,
			want: Geometry{Width: 1280, Height: 720, ScaleWidth: 1280, ScaleHeight: 720, Fit: FitContain}},
		{name: "contain odd source rounds to the box", w: 721, h: 405, width: Px(1280), height: Px(720), fit: FitContain, pos: "center", even: true,
			want: Geometry{Width: 1280, Height: 720, ScaleWidth: 1280, ScaleHeight: 720, Fit: FitContain}},
		{name: "contain 4:3 in 16:9", w: 640, h: 480, width: Px(1280), height: Px(720), fit: FitContain, pos: "center", even: true,
			want: Geometry{Width: 1280, Height: 720, ScaleWidth: 960, ScaleHeight: 720, Fit: FitContain, X: 160, Background: "#000000"}},
		{name: "cover crops left", w: 1920, h: 1080, width: Px(320), height: Px(320), fit: FitCover, pos: "left", even: true,
			want: Geometry{Width: 320, Height: 320, ScaleWidth: 568, ScaleHeight: 320, Fit: FitCover, X: 0, Y: 0}},
		{name: "cover crops centre", w: 1920, h: 1080, width: Px(320), height: Px(320), fit: FitCover, pos: "center", even: true,
			want: Geometry{Width: 320, Height: 320, ScaleWidth: 568, ScaleHeight: 320, Fit: FitCover, X: 124, Y: 0}},
		{name: "cover crops bottom right", w: 1080, h: 1920, width: Px(300), height: Px(300), fit: FitCover, pos: "bottom_right", even: false,
			want: Geometry{Width: 300, Height: 300, ScaleWidth: 300, ScaleHeight: 533, Fit: FitCover, X: 0, Y: 233}},
		{name: "fill stretches", w: 1920, h: 1080, width: Px(500), height: Px(500), fit: FitFill, even: true,
			want: Geometry{Width: 500, Height: 500, ScaleWidth: 500, ScaleHeight: 500, Fit: FitFill}},
		{name: "too big", w: 4000, h: 3000, width: Pct(400), even: true, wantErr: true},
		{name: "no picture", w: 0, h: 0, even: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fit := tc.fit
			if fit == "" {
				fit = FitContain
			}
			pos := tc.pos
			if pos == "" {
				pos = "center"
			}
			got, err := resolveGeometry(tc.w, tc.h, tc.sar, tc.width, tc.height, fit, pos, "", tc.even)
			if tc.wantErr {
				if ittybit.KindOf(err) != ittybit.ErrUnsupportedMedia {
					t.Fatalf("got %v, want unsupported_media", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("geometry (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanRotation(t *testing.T) {
	// A phone clip: stored 1920×1080 with 90° rotation; the probe reports
	// it as displayed, 1080×1920.
	m := media()
	m.Width, m.Height, m.Rotation = 1080, 1920, 90
	p := mustPlan(t, KindVideo, `{"width":540}`, m)
	if p.Video.Width != 540 || p.Video.Height != 960 {
		t.Errorf("rotated clip at width 540: got %dx%d, want 540x960", p.Video.Width, p.Video.Height)
	}
}

func TestPlanTrimAndErrors(t *testing.T) {
	p := mustPlan(t, KindVideo, `{"start":2,"end":4.5}`, media())
	if p.Start != 2 || p.Duration != 2.5 || !p.Trim {
		t.Errorf("trim: got start %v duration %v trim %v", p.Start, p.Duration, p.Trim)
	}
	p = mustPlan(t, KindVideo, `{"start":2,"end":30}`, media())
	if p.Duration != 8 || p.Trim {
		t.Errorf("end past the source: got duration %v trim %v, want 8 and no trim", p.Duration, p.Trim)
	}
	p = mustPlan(t, KindImage, `{"start":9.99}`, media())
	if p.Start != 9.966 {
		t.Errorf("image after the last frame: got start %v, want 9.966 (the last frame)", p.Start)
	}
	noAudio := media()
	noAudio.HasAudio = false
	audioOnly := media()
	audioOnly.HasVideo, audioOnly.Width, audioOnly.Height = false, 0, 0
	still := MediaInfo{Format: "png_pipe", Width: 640, Height: 480, HasVideo: true, Still: true}
	for _, tc := range []struct {
		name    string
		kind    Kind
		options string
		m       MediaInfo
	}{
		{"start past the end", KindVideo, `{"start":10}`, media()},
		{"image start past the end", KindImage, `{"start":11}`, media()},
		{"audio without audio", KindAudio, `{}`, noAudio},
		{"video without video", KindVideo, `{}`, audioOnly},
		{"video from a still", KindVideo, `{}`, still},
		{"image from audio", KindImage, `{}`, audioOnly},
		{"still image with start", KindImage, `{"start":1}`, still},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Options
			_ = json.Unmarshal([]byte(tc.options), &o)
			_, err := NewPlan(Spec{Kind: tc.kind, Options: o}, tc.m, BackendSoftware)
			if ittybit.KindOf(err) != ittybit.ErrUnsupportedMedia {
				t.Fatalf("got %v, want unsupported_media", err)
			}
		})
	}
}

func TestPlanRateControl(t *testing.T) {
	for i, q := range Qualities {
		p := mustPlan(t, KindVideo, `{"quality":"`+string(q)+`"}`, media())
		want := []int{32, 28, 23, 20, 17}[i]
		if rc := p.Video.Rate; rc.Mode != RateQuality || rc.Param != "crf" || rc.Value != want {
			t.Errorf("%s: got %+v, want crf %d", q, rc, want)
		}
	}
	p := mustPlan(t, KindVideo, `{"bitrate":2500000,"quality":"high"}`, media())
	if rc := p.Video.Rate; rc.Mode != RateBitrate || rc.Bitrate != 2_500_000 || rc.MaxRate != 2_500_000 || rc.BufSize != 5_000_000 {
		t.Errorf("bitrate: got %+v, want capped VBR at 2.5 Mbit/s", rc)
	}
	p = mustPlan(t, KindVideo, `{"codec":"vp9","width":640}`, media())
	if rc := p.Video.Rate; rc.Value != 36 {
		t.Errorf("vp9 at 360p medium: got crf %d, want 36 (31 + 5 for 360p)", rc.Value)
	}
	for _, tc := range []struct{ encoder, param string }{
		{"h264_nvenc", "cq"}, {"hevc_qsv", "global_quality"}, {"h264_vaapi", "qp"}, {"libsvtav1", "crf"},
	} {
		rc, err := QualityRate(tc.encoder, QualityMedium, 1080, 0)
		if err != nil || rc.Param != tc.param {
			t.Errorf("QualityRate(%s) = %+v, %v; want param %s", tc.encoder, rc, err, tc.param)
		}
	}
}

func TestPlanFPS(t *testing.T) {
	p := mustPlan(t, KindVideo, `{"fps":29.97}`, media())
	if p.Video.FPS != "30000/1001" {
		t.Errorf("fps 29.97: got %q, want 30000/1001", p.Video.FPS)
	}
	p = mustPlan(t, KindVideo, `{"fps":30}`, media())
	if p.Video.FPS != "" {
		t.Errorf("fps equal to the source: got %q, want no change", p.Video.FPS)
	}
}

func TestPlanAudio(t *testing.T) {
	surround := media()
	surround.AudioChannels = 6
	for _, tc := range []struct {
		options string
		encoder string
		bitrate int64
		vbr     int
		ch      int
	}{
		{`{}`, "libmp3lame", 0, 4, 2},
		{`{"format":"aac","quality":"high"}`, "aac", 192_000, -1, 2},
		{`{"format":"opus","bitrate":64000}`, "libopus", 64_000, -1, 2},
		{`{"format":"ogg","quality":"very_high"}`, "libvorbis", 0, 8, 2},
		{`{"format":"flac"}`, "flac", 0, -1, 0},
		{`{"format":"wav"}`, "pcm_s16le", 0, -1, 0},
	} {
		p := mustPlan(t, KindAudio, tc.options, surround)
		a := p.Audio
		vbr := -1
		if a.VBRQuality != nil {
			vbr = *a.VBRQuality
		}
		if a.Encoder != tc.encoder || a.Bitrate != tc.bitrate || vbr != tc.vbr || a.Channels != tc.ch {
			t.Errorf("%s: got %+v (vbr %d), want %s %d vbr %d ch %d", tc.options, a, vbr, tc.encoder, tc.bitrate, tc.vbr, tc.ch)
		}
	}
}

func TestLadder(t *testing.T) {
	heights := func(p Plan) []int {
		var hs []int
		for _, r := range p.HLS.Renditions {
			hs = append(hs, r.Height)
		}
		return hs
	}
	tests := []struct {
		name    string
		w, h    int
		fps     string
		options string
		want    []int
	}{
		{"1080p", 1920, 1080, "30/1", `{}`, []int{1080, 720, 540, 360, 234}},
		{"4k is capped at five", 3840, 2160, "30/1", `{}`, []int{2160, 1440, 1080, 720, 540}},
		{"odd 405p source", 721, 405, "30/1", `{}`, []int{404, 360, 234}},
		{"small source", 320, 180, "30/1", `{}`, []int{180}},
		{"box limits the top", 1920, 1080, "30/1", `{"width":1280}`, []int{720, 540, 360, 234}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := media()
			m.Width, m.Height, m.FrameRate = tc.w, tc.h, tc.fps
			p := mustPlan(t, KindAdaptive, tc.options, m)
			if diff := cmp.Diff(tc.want, heights(p)); diff != "" {
				t.Errorf("ladder heights (-want +got):\n%s", diff)
			}
			prev := int64(1 << 62)
			for _, r := range p.HLS.Renditions {
				if r.Width > p.Video.Width || r.Height > p.Video.Height {
					t.Errorf("rendition %s above the source", r.Name)
				}
				if r.Width%2 != 0 || r.Height%2 != 0 {
					t.Errorf("rendition %s has odd size %dx%d", r.Name, r.Width, r.Height)
				}
				if r.Rate.MaxRate <= 0 || r.Rate.MaxRate >= prev {
					t.Errorf("rendition %s cap %d not below the one above (%d)", r.Name, r.Rate.MaxRate, prev)
				}
				prev = r.Rate.MaxRate
			}
		})
	}
	m := media()
	m.FrameRate, m.FPS = "60/1", 60
	p := mustPlan(t, KindAdaptive, `{}`, m)
	for _, r := range p.HLS.Renditions {
		if (r.Height <= 480) != (r.FPS == "30") {
			t.Errorf("60 fps source, rendition %s: fps %q (small rungs run at 30)", r.Name, r.FPS)
		}
	}
}
