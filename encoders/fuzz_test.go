package encoders

import (
	"encoding/json"
	"testing"

	"github.com/ittybit-oss/ittybit"
)

// FuzzValidate feeds arbitrary request bodies through decoding, Validate
// and, for accepted specs, NewPlan against a few sources. Nothing may panic;
// every problem must carry a kind and a message; an accepted plan must have
// sizes within the limits (storage's FuzzInputHost checks what an accepted
// input may reach). Its seed corpus is in
// testdata/fuzz/FuzzValidate.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`))
	sources := []MediaInfo{
		media(),
		{Format: "mov", Duration: 3, Width: 721, Height: 405, FPS: 60, FrameRate: "60/1", HasVideo: true, SampleAspect: "4:3"},
		{Format: "mp3", Duration: 30, HasAudio: true, AudioChannels: 6, Codecs: Codecs{Audio: "mp3"}},
		{Format: "png_pipe", Width: 1, Height: 8192, HasVideo: true, Still: true},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var s Spec
		if json.Unmarshal(body, &s) != nil {
			return
		}
		err := Validate(s, Policy{})
		for _, p := range ittybit.Problems(err) {
			if p.Kind == "" || p.Message == "" {
				t.Fatalf("problem without kind or message: %+v", p)
			}
		}
		if err != nil {
			return
		}
		for _, m := range sources {
			p, err := NewPlan(s, m, BackendSoftware)
			if err != nil {
				if ittybit.KindOf(err) == ittybit.ErrInternal {
					t.Fatalf("internal error planning %s on %+v: %v", body, m, err)
				}
				continue
			}
			if v := p.Video; v != nil && (v.Width < 1 || v.Height < 1 || v.Width > MaxDimension || v.Height > MaxDimension ||
				v.ScaleWidth < 1 || v.ScaleHeight < 1 || v.X < 0 || v.Y < 0) {
				t.Fatalf("plan for %s on %+v has bad geometry %+v", body, m, v.Geometry)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("plan does not marshal: %v", err)
			}
		}
	})
}
