package encoders

import (
	"math"
	"strings"
	"testing"
)

func splitPlan() Plan {
	return Plan{Kind: KindVideo, Format: "mp4", Video: &VideoPlan{Codec: CodecH264}, Audio: &AudioPlan{Codec: "aac"},
		Source: MediaInfo{FrameRate: "30000/1001", FPS: 29.97, HasVideo: true, HasAudio: true}}
}

func TestSplit(t *testing.T) {
	fps := 30000.0 / 1001
	for _, tc := range []struct {
		frames int64
		offset float64
		want   []int64 // frames per video part
	}{
		{3600, 0, []int64{900, 900, 900, 900}},
		{1900, 0, []int64{950, 950}}, // 899 a part: the remainder joins
		{2700, 0.021, []int64{900, 900, 900}},
	} {
		p := splitPlan()
		p.Source.VideoStart = tc.offset
		parts, err := Split(p, tc.frames, 30)
		if err != nil {
			t.Fatalf("%d frames: %v", tc.frames, err)
		}
		if len(parts) != len(tc.want)+1 || parts[len(parts)-1].Kind != PartAudio {
			t.Fatalf("%d frames: %+v, want %d video parts and the audio", tc.frames, parts, len(tc.want))
		}
		next := int64(0)
		for i, want := range tc.want {
			part := parts[i]
			if part.Index != i || part.Kind != PartVideo || part.First != next || part.Frames != want {
				t.Errorf("%d frames: part %d is %+v, want frames [%d, %d)", tc.frames, i, part, next, next+want)
			}
			wantStart := 0.0
			if next > 0 {
				wantStart = tc.offset + (float64(next)-0.5)/fps
			}
			if math.Abs(part.Start-wantStart) > 1e-9 || (i > 0 && part.Start != parts[i-1].End) {
				t.Errorf("%d frames: part %d starts at %.6f, want %.6f, where the previous ends", tc.frames, i, part.Start, wantStart)
			}
			next += want
		}
		if next != tc.frames {
			t.Errorf("%d frames: the parts hold %d", tc.frames, next)
		}
	}
}

func TestSplitRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit    func(*Plan)
		seconds float64
		frames  int64
		want    string
	}{
		"audio task":    {func(p *Plan) { p.Kind = KindAudio }, 30, 3600, "only video"},
		"variable rate": {func(p *Plan) { p.Source.VariableFrameRate = true }, 30, 3600, "variable"},
		"rate change":   {func(p *Plan) { p.Video.FPS = "25" }, 30, 3600, "frame rate"},
		"cut":           {func(p *Plan) { p.Start = 5 }, 30, 3600, "part of the source"},
		"unknown rate":  {func(p *Plan) { p.Source.FrameRate = "" }, 30, 3600, "unknown"},
		"short parts":   {func(*Plan) {}, 1.5, 3600, "the least is 2 s"},
		"too short":     {func(*Plan) {}, 30, 1500, "fewer than two parts"},
		"no frames":     {func(*Plan) {}, 30, 0, "no frames"},
	} {
		p := splitPlan()
		tc.edit(&p)
		if _, err := Split(p, tc.frames, tc.seconds); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// TestSplitBalanced: the count of parts grows to fill the free slots in
// whole rounds, by at most a quarter, never below the shortest part.
func TestSplitBalanced(t *testing.T) {
	for _, tc := range []struct {
		frames    int64
		seconds   float64
		slots     int
		audio     bool
		wantVideo int
	}{
		{3600, 30, 2, true, 5},       // 4 video + sound = 5 on 2 slots: 5 + sound = 6
		{3600, 30, 2, false, 4},      // 4 on 2 slots: whole rounds already
		{3600, 30, 0, true, 4},       // no slots given: as Split
		{3600, 30, 5, true, 4},       // 4 + sound = 5
		{3600, 30, 7, true, 4},       // 6 + sound is more than a quarter away
		{215760, 30, 100, true, 299}, // 2 h: 240 + sound → 300 units, three whole rounds
		{3600, 10, 4, true, 15},      // 12 + sound = 13 on 4 slots → 15 + sound
	} {
		p := splitPlan()
		if !tc.audio {
			p.Audio = nil
		}
		parts, err := SplitBalanced(p, tc.frames, tc.seconds, tc.slots)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		video := 0
		for _, part := range parts {
			if part.Kind == PartVideo {
				video++
				if float64(part.Frames)/p.Source.FPS < MinPartSeconds {
					t.Errorf("%+v: part %d lasts %d frames", tc, part.Index, part.Frames)
				}
			}
		}
		if video != tc.wantVideo {
			t.Errorf("%+v: %d video parts, want %d", tc, video, tc.wantVideo)
		}
	}
}

func ladderPlan() Plan {
	p := splitPlan()
	p.Kind, p.Format = KindAdaptive, "hls"
	p.HLS = &HLSPlan{SegmentSeconds: 6, KeyframeSeconds: 2, Renditions: []Rendition{{Name: "360p"}, {Name: "240p"}}}
	p.Duration = 120
	return p
}

// TestSplitLadder: every rendition is cut into the same runs of whole
// segments, each starting on the frame where the ladder in one run starts
// a segment; a short rest joins the last run.
func TestSplitLadder(t *testing.T) {
	fps := 30000.0 / 1001
	p := ladderPlan()
	parts, err := SplitLadder(p, 3596, 30) // 119.98 s: runs of 30 s (five segments)
	if err != nil {
		t.Fatal(err)
	}
	wantFirst := []int64{0, 900, 1799, 2698} // the first frame at or after 0, 30, 60, 90 s
	if len(parts) != 2*len(wantFirst)+1 || parts[len(parts)-1].Kind != PartAudio || parts[len(parts)-1].Index != len(parts)-1 {
		t.Fatalf("%+v, want %d runs of each rendition and the sound", parts, len(wantFirst))
	}
	for i, part := range parts[:len(parts)-1] {
		r, k := i/len(wantFirst), i%len(wantFirst)
		last := int64(3596)
		if k+1 < len(wantFirst) {
			last = wantFirst[k+1]
		}
		if part.Index != i || part.Kind != PartRendition || part.Rendition != r || part.First != wantFirst[k] || part.Frames != last-wantFirst[k] || !part.Chunk() {
			t.Errorf("part %d: %+v, want run %d of rendition %d: frames [%d, %d)", i, part, k, r, wantFirst[k], last)
		}
		if k > 0 && (float64(part.First)/fps < float64(k)*30 || float64(part.First-1)/fps >= float64(k)*30) {
			t.Errorf("part %d starts on frame %d (%.4f s), not the first at or after %d s", i, part.First, float64(part.First)/fps, k*30)
		}
		if PartFile(part, "hls") != PartFile(Part{Index: i, Kind: PartVideo}, "hls") {
			t.Errorf("a run is kept as %s, want NUT", PartFile(part, "hls"))
		}
	}
	// Runs of whole segments: 8 s asked makes runs of one 6 s segment;
	// a rest under 2 s joins the run before it.
	parts, err = SplitLadder(p, 30*6*3+50, 8)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parts); n != 7 || parts[1].First != 180 || parts[2].First != 360 || parts[2].Frames != 30*6*3+50-360 {
		t.Errorf("%+v, want three runs a rendition, the last with the 50 frames left", parts)
	}
}

func TestSplitLadderRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit    func(*Plan)
		seconds float64
		frames  int64
		want    string
	}{
		"video task":         {func(p *Plan) { p.Kind = KindVideo }, 30, 3600, "only adaptive"},
		"variable rate":      {func(p *Plan) { p.Source.VariableFrameRate = true }, 30, 3600, "variable"},
		"rendition rate":     {func(p *Plan) { p.HLS.Renditions[1].FPS = "30" }, 30, 3600, "rendition 240p changes the frame rate"},
		"cut":                {func(p *Plan) { p.Trim = true }, 30, 3600, "part of the source"},
		"unknown rate":       {func(p *Plan) { p.Source.FrameRate = "" }, 30, 3600, "unknown"},
		"short parts":        {func(*Plan) {}, 1, 3600, "the least is 2 s"},
		"one segment":        {func(*Plan) {}, 30, 200, "fewer than two runs"},
		"no segment lengths": {func(p *Plan) { p.HLS.SegmentSeconds = 0 }, 30, 3600, "no segment length"},
	} {
		p := ladderPlan()
		tc.edit(&p)
		if _, err := SplitLadder(p, tc.frames, tc.seconds); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}
