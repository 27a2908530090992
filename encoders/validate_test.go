package encoders

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
)

// mustSpec decodes a task request body into a Spec, as the API does.
func mustSpec(tb testing.TB, body string) Spec {
	tb.Helper()
	var s Spec
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		tb.Fatalf("decode %s: %v", body, err)
	}
	return s
}

// opts builds a video-kind request body with the given options JSON.
func req(kind, options string) string {
	return fmt.Sprintf(`{"input":"https://example.com/upload.mov","kind":%q,"options":%s}`, kind, options)
}

func TestValidateAcceptsSeedExamples(t *testing.T) {
	for name, body := range map[string]string{
		"video":    `{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`,
		"audio":    `{"input":"https://example.com/interview.mp4","kind":"audio","options":{"format":"mp3","quality":"high"}}`,
		"image":    `{"input":"https://example.com/video.mp4","kind":"image","options":{"start":5,"format":"webp","width":640}}`,
		"adaptive": `{"input":"https://example.com/video.mp4","kind":"adaptive_video","options":{"format":"hls","quality":"high"}}`,
		"s3":       `{"input":"https://example.com/upload.mov","kind":"video","output":"s3://my-bucket/processed/video.mp4"}`,
		"s3 input": `{"input":"s3://bucket/in/clip.mov","kind":"video"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := Validate(mustSpec(t, body), Policy{}); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

// TestValidateErrorKinds has at least one case per validation error kind,
// and checks the message names the field and what is accepted.
func TestValidateErrorKinds(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		policy   Policy
		kind     ittybit.ErrorKind
		field    string
		contains []string
	}{
		{"input missing", `{"kind":"video"}`, Policy{}, ittybit.ErrInputRequired, "input", []string{"input is required", "http://"}},
		{"input blank", `{"input":"  ","kind":"video"}`, Policy{}, ittybit.ErrInputRequired, "input", nil},
		{"input ftp", `{"input":"ftp://example.com/a.mov","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"http://, https://, or s3://", "ftp"}},
		{"input file", `{"input":"file:///etc/passwd","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"file://"}},
		{"input no scheme", `{"input":"example.com/a.mov","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"no scheme"}},
		{"input malformed", `{"input":"http://[::1","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"not a valid URL"}},
		{"input no host", `{"input":"https:///a.mov","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"no host"}},
		{"input bad port", `{"input":"http://example.com:99999/a","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"port"}},
		{"input s3 no key", `{"input":"s3://bucket","kind":"video"}`, Policy{}, ittybit.ErrInvalidInput, "input", []string{"s3://bucket/key"}},
		{"kind missing", `{"input":"https://example.com/a.mov"}`, Policy{}, ittybit.ErrInvalidKind, "kind", []string{"kind is required", "video, audio, image, adaptive_video"}},
		{"kind unknown", `{"input":"https://example.com/a.mov","kind":"animation"}`, Policy{}, ittybit.ErrInvalidKind, "kind", []string{`"animation"`, "adaptive_video"}},
		{"format unknown", req("video", `{"format":"mkv"}`), Policy{}, ittybit.ErrInvalidFormat, "format", []string{`"mkv"`, "mp4, webm, mov"}},
		{"format other kind", req("video", `{"format":"mp3"}`), Policy{}, ittybit.ErrInvalidFormat, "format", []string{"mp3 is a audio format"}},
		{"format audio", req("audio", `{"format":"mp4"}`), Policy{}, ittybit.ErrInvalidFormat, "format", []string{"mp3, aac, ogg, opus, wav, flac"}},
		{"format image", req("image", `{"format":"jpg"}`), Policy{}, ittybit.ErrInvalidFormat, "format", []string{"jpeg, png, webp, gif, avif"}},
		{"format adaptive", req("adaptive_video", `{"format":"dash"}`), Policy{}, ittybit.ErrInvalidFormat, "format", []string{"hls"}},
		{"format wrong type", req("video", `{"format":4}`), Policy{}, ittybit.ErrInvalidFormat, "format", []string{"one of mp4, webm, mov", "got 4"}},
		{"codec unknown", req("video", `{"codec":"h266"}`), Policy{}, ittybit.ErrInvalidCodec, "codec", []string{`"h266"`, "h264, h265, vp9, av1"}},
		{"codec incompatible", req("video", `{"format":"mp4","codec":"vp9"}`), Policy{}, ittybit.ErrInvalidCodec, "codec", []string{"vp9 cannot go in mp4", "h264, h265, av1", "webm"}},
		{"codec wrong type", req("video", `{"codec":true}`), Policy{}, ittybit.ErrInvalidCodec, "codec", []string{"got true"}},
		{"option unknown", req("video", `{"widht":100}`), Policy{}, ittybit.ErrInvalidOption, "widht", []string{`unknown option "widht"`, "format, codec, quality, width"}},
		{"option not of kind", req("audio", `{"width":100}`), Policy{}, ittybit.ErrInvalidOption, "width", []string{"width is not an option of audio", "format, quality, bitrate, start, end"}},
		{"codec not of audio", req("audio", `{"codec":"h264"}`), Policy{}, ittybit.ErrInvalidOption, "codec", []string{"not an option of audio"}},
		{"end not of image", req("image", `{"end":3}`), Policy{}, ittybit.ErrInvalidOption, "end", []string{"not an option of image"}},
		{"options not object", req("video", `[1,2]`), Policy{}, ittybit.ErrInvalidOption, "options", []string{"JSON object"}},
		{"quality unknown", req("video", `{"quality":"ultra"}`), Policy{}, ittybit.ErrInvalidOption, "quality", []string{"very_low, low, medium, high, very_high"}},
		{"width zero", req("video", `{"width":0}`), Policy{}, ittybit.ErrInvalidOption, "width", []string{"width 0 is out of range", "1 to 8192"}},
		{"width over", req("video", `{"width":8193}`), Policy{}, ittybit.ErrInvalidOption, "width", []string{"8193"}},
		{"width fraction", req("video", `{"width":12.5}`), Policy{}, ittybit.ErrInvalidOption, "width", []string{"whole number of pixels", "got 12.5"}},
		{"width text", req("video", `{"width":"wide"}`), Policy{}, ittybit.ErrInvalidOption, "width", []string{`"50%"`}},
		{"width percent over", req("video", `{"width":"401%"}`), Policy{}, ittybit.ErrInvalidOption, "width", []string{"401%", "400%"}},
		{"height negative percent", req("video", `{"height":"-5%"}`), Policy{}, ittybit.ErrInvalidOption, "height", []string{"-5%"}},
		{"height zero percent", req("image", `{"height":"0%"}`), Policy{}, ittybit.ErrInvalidOption, "height", nil},
		{"fit unknown", req("video", `{"fit":"stretch"}`), Policy{}, ittybit.ErrInvalidOption, "fit", []string{"contain, cover, fill"}},
		{"position unknown", req("image", `{"position":"middle"}`), Policy{}, ittybit.ErrInvalidOption, "position", []string{"center, top"}},
		{"background no fit", req("video", `{"background":"#000000"}`), Policy{}, ittybit.ErrInvalidOption, "background", []string{`fit "contain"`, "no fit"}},
		{"background cover", req("video", `{"fit":"cover","background":"#000000"}`), Policy{}, ittybit.ErrInvalidOption, "background", []string{`fit "cover"`}},
		{"background not hex", req("video", `{"fit":"contain","background":"black"}`), Policy{}, ittybit.ErrInvalidOption, "background", []string{"hex color"}},
		{"fps low", req("video", `{"fps":0.5}`), Policy{}, ittybit.ErrInvalidOption, "fps", []string{"1 to 60"}},
		{"fps high", req("video", `{"fps":61}`), Policy{}, ittybit.ErrInvalidOption, "fps", []string{"61"}},
		{"fps string", req("video", `{"fps":"30"}`), Policy{}, ittybit.ErrInvalidOption, "fps", []string{`got "30"`}},
		{"bitrate low", req("video", `{"bitrate":299999}`), Policy{}, ittybit.ErrInvalidOption, "bitrate", []string{"300000 to 60000000"}},
		{"bitrate high", req("video", `{"bitrate":60000001}`), Policy{}, ittybit.ErrInvalidOption, "bitrate", nil},
		{"bitrate fraction", req("video", `{"bitrate":1000000.5}`), Policy{}, ittybit.ErrInvalidOption, "bitrate", []string{"whole number"}},
		{"audio bitrate low", req("audio", `{"bitrate":31999}`), Policy{}, ittybit.ErrInvalidOption, "bitrate", []string{"32000 to 320000"}},
		{"audio bitrate high", req("audio", `{"bitrate":320001}`), Policy{}, ittybit.ErrInvalidOption, "bitrate", nil},
		{"audio bitrate lossless", req("audio", `{"format":"flac","bitrate":128000}`), Policy{}, ittybit.ErrInvalidOption, "bitrate", []string{"lossless"}},
		{"start negative", req("video", `{"start":-1}`), Policy{}, ittybit.ErrInvalidOption, "start", []string{"0 to 360000"}},
		{"start over", req("video", `{"start":360001}`), Policy{}, ittybit.ErrInvalidOption, "start", nil},
		{"end zero", req("video", `{"end":0}`), Policy{}, ittybit.ErrInvalidOption, "end", []string{"above 0"}},
		{"end before start", req("video", `{"start":5,"end":3}`), Policy{}, ittybit.ErrInvalidOption, "end", []string{"end (3 s) must be after start (5 s)"}},
		{"end equal start", req("audio", `{"start":5,"end":5}`), Policy{}, ittybit.ErrInvalidOption, "end", nil},
		{"image start text", req("image", `{"start":"5s"}`), Policy{}, ittybit.ErrInvalidOption, "start", []string{"frame time"}},
		{"output not s3", `{"input":"https://example.com/a.mov","kind":"video","output":"https://example.com/out.mp4"}`, Policy{}, ittybit.ErrInvalidOutput, "output", []string{"s3://bucket/key"}},
		{"output no key", `{"input":"https://example.com/a.mov","kind":"video","output":"s3://bucket"}`, Policy{}, ittybit.ErrInvalidOutput, "output", nil},
		{"output bad bucket", `{"input":"https://example.com/a.mov","kind":"video","output":"s3://My_Bucket/a.mp4"}`, Policy{}, ittybit.ErrInvalidOutput, "output", []string{"bucket name"}},
		{"output wrong ext", `{"input":"https://example.com/a.mov","kind":"video","options":{"format":"mp4"},"output":"s3://bucket/a.webm"}`, Policy{}, ittybit.ErrInvalidOutput, "output", []string{".webm", "set format to webm"}},
		{"output other kind ext", `{"input":"https://example.com/a.mov","kind":"video","output":"s3://bucket/a.mp3"}`, Policy{}, ittybit.ErrInvalidOutput, "output", []string{"mp3 is a audio format"}},
		{"local output wrong ext", `{"input":"clip.mov","kind":"image","options":{"format":"png"},"output":"out.jpg"}`, Policy{LocalPaths: true}, ittybit.ErrInvalidOutput, "output", []string{".jpg"}},
	}
	seen := map[ittybit.ErrorKind]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(mustSpec(t, tc.body), tc.policy)
			ps := ittybit.Problems(err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems %v, want 1 of kind %s", len(ps), err, tc.kind)
			}
			p := ps[0]
			if p.Kind != tc.kind || p.Field != tc.field {
				t.Errorf("got kind %s field %q (%s), want kind %s field %q", p.Kind, p.Field, p.Message, tc.kind, tc.field)
			}
			if !strings.Contains(p.Message, tc.field) {
				t.Errorf("message %q does not name the field %q", p.Message, tc.field)
			}
			for _, want := range tc.contains {
				if !strings.Contains(p.Message, want) {
					t.Errorf("message %q does not contain %q", p.Message, want)
				}
			}
		})
		seen[tc.kind] = true
	}
	for _, k := range []ittybit.ErrorKind{ittybit.ErrInputRequired, ittybit.ErrInvalidInput, ittybit.ErrInvalidKind,
		ittybit.ErrInvalidFormat, ittybit.ErrInvalidCodec, ittybit.ErrInvalidOption, ittybit.ErrInvalidOutput} {
		if !seen[k] {
			t.Errorf("no case for error kind %s", k)
		}
	}
}

// TestValidateRangeEdges accepts every boundary value and refuses the
// values just beyond (refusals are in TestValidateErrorKinds).
func TestValidateRangeEdges(t *testing.T) {
	ok := map[string][]string{
		"video": {
			`{"width":1}`, `{"width":8192}`, `{"height":1}`, `{"height":8192}`,
			`{"width":"0.5%"}`, `{"width":"400%"}`, `{"height":"100%"}`, `{"width":"1280"}`, `{"width":"1280px"}`,
			`{"fps":1}`, `{"fps":60}`, `{"fps":29.97}`,
			`{"bitrate":300000}`, `{"bitrate":60000000}`, `{"bitrate":1.5e6}`,
			`{"start":0}`, `{"start":360000}`, `{"end":0.001}`, `{"end":360000}`, `{"start":1,"end":1.001}`,
			`{"fit":"contain","background":"#fff"}`, `{"fit":"contain","background":"#A0B1C2"}`,
			`{"fit":"cover","position":"bottom_right"}`, `{"fit":"fill"}`,
			`{"quality":"very_low"}`, `{"quality":"very_high"}`, `{}`, `null`,
			`{"width":null}`,
		},
		"audio": {`{"bitrate":32000}`, `{"bitrate":320000}`, `{"format":"opus","bitrate":64000}`},
		"image": {`{"start":0}`, `{"width":"50%","height":"50%","fit":"cover","position":"top"}`},
	}
	for kind, cases := range ok {
		for _, o := range cases {
			t.Run(kind+" "+o, func(t *testing.T) {
				if err := Validate(mustSpec(t, req(kind, o)), Policy{}); err != nil {
					t.Fatalf("Validate: %v", err)
				}
			})
		}
	}
}

// TestValidateFormatCodecPairs checks every format × codec pair against the
// contract's table: h264, h265 → mp4, mov; vp9 → webm; av1 → mp4, webm.
func TestValidateFormatCodecPairs(t *testing.T) {
	allowed := map[string]bool{
		"mp4/h264": true, "mp4/h265": true, "mp4/av1": true,
		"mov/h264": true, "mov/h265": true,
		"webm/vp9": true, "webm/av1": true,
	}
	for _, f := range []string{"mp4", "webm", "mov"} {
		for _, c := range []string{"h264", "h265", "vp9", "av1"} {
			t.Run(f+"/"+c, func(t *testing.T) {
				err := Validate(mustSpec(t, req("video", fmt.Sprintf(`{"format":%q,"codec":%q}`, f, c))), Policy{})
				if allowed[f+"/"+c] {
					if err != nil {
						t.Fatalf("got %v, want accepted", err)
					}
					return
				}
				if ittybit.KindOf(err) != ittybit.ErrInvalidCodec {
					t.Fatalf("got %v, want %s", err, ittybit.ErrInvalidCodec)
				}
			})
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	body := `{"input":"ftp://x/y","kind":"video","options":{"format":"mkv","codec":"h266","width":0,"fps":99,"color":"red"},"output":"gs://b/k"}`
	err := Validate(mustSpec(t, body), Policy{})
	var got []string
	for _, p := range ittybit.Problems(err) {
		got = append(got, string(p.Kind)+":"+p.Field)
	}
	want := []string{"invalid_input:input", "invalid_format:format", "invalid_codec:codec", "invalid_option:color", "invalid_option:width", "invalid_option:fps", "invalid_output:output"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got problems %v, want %v", got, want)
	}
	kind, msg := ittybit.Summary(err)
	if kind != ittybit.ErrInvalidInput || strings.Count(msg, "; ") < len(want)-1 {
		t.Errorf("ittybit.Summary = %s, %q", kind, msg)
	}
}

func TestValidatePolicy(t *testing.T) {
	s := mustSpec(t, `{"input":"http://127.0.0.1:8000/a.mov","kind":"video"}`)
	if err := Validate(s, Policy{}); err != nil {
		t.Errorf("no host check: got %v", err)
	}
	refuse := func(host string) error { return errors.New("refused " + host) }
	if p := ittybit.Problems(Validate(s, Policy{InputHost: refuse})); len(p) != 1 || p[0].Kind != ittybit.ErrInvalidInput || p[0].Field != "input" || p[0].Message != "input host 127.0.0.1: refused 127.0.0.1" {
		t.Errorf("host refused: got %+v", p)
	}
	local := mustSpec(t, `{"input":"./clip.mov","kind":"video","output":"out/clip.mp4"}`)
	if err := Validate(local, Policy{LocalPaths: true}); err != nil {
		t.Errorf("local paths: got %v", err)
	}
	if err := Validate(local, Policy{}); ittybit.KindOf(err) != ittybit.ErrInvalidInput {
		t.Errorf("local path without LocalPaths: got %v, want invalid_input", err)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		kind   Kind
		opts   string
		output string
		format string
		codec  string
	}{
		{KindVideo, `{}`, "", "mp4", "h264"},
		{KindVideo, `{"format":"webm"}`, "", "webm", "vp9"},
		{KindVideo, `{"format":"mov"}`, "", "mov", "h264"},
		{KindVideo, `{"codec":"vp9"}`, "", "webm", "vp9"},
		{KindVideo, `{"codec":"av1"}`, "", "mp4", "av1"},
		{KindVideo, `{}`, "s3://b/clip.webm", "webm", "vp9"},
		{KindAudio, `{}`, "", "mp3", ""},
		{KindAudio, `{}`, "s3://b/a.flac", "flac", ""},
		{KindImage, `{}`, "", "jpeg", ""},
		{KindImage, `{}`, "poster.JPG", "jpeg", ""},
		{KindAdaptive, `{}`, "", "hls", ""},
	}
	for _, tc := range tests {
		var o Options
		if err := json.Unmarshal([]byte(tc.opts), &o); err != nil {
			t.Fatal(err)
		}
		d := Defaults(tc.kind, o, tc.output)
		if d.Format != tc.format || d.Codec != tc.codec || d.Quality != QualityMedium {
			t.Errorf("Defaults(%s, %s, %q) = %s/%s/%s, want %s/%s/medium", tc.kind, tc.opts, tc.output, d.Format, d.Codec, d.Quality, tc.format, tc.codec)
		}
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	in := `{"format":"mp4","codec":"h264","quality":"high","width":1280,"height":"50%","fit":"contain","position":"top_left","background":"#000000","fps":29.97,"bitrate":2000000,"start":1.5,"end":10}`
	var o Options
	if err := json.Unmarshal([]byte(in), &o); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
	var empty Options
	if out, _ := json.Marshal(empty); string(out) != "{}" {
		t.Errorf("empty options marshal to %s, want {}", out)
	}
}

func TestOptionsSetFromFlags(t *testing.T) {
	var o Options
	for _, kv := range [][2]string{{"width", "50%"}, {"height", "720"}, {"fps", "29.97"}, {"start", "5"}, {"format", "webm"}, {"bitrate", "1e6"}} {
		o.Set(kv[0], kv[1])
	}
	if o.Width == nil || o.Width.Percent != 50 || o.Height == nil || o.Height.Pixels != 720 {
		t.Errorf("sizes: got %v × %v", o.Width, o.Height)
	}
	if o.FPS == nil || *o.FPS != 29.97 || o.Start == nil || *o.Start != 5 || o.Format != "webm" || o.Bitrate == nil || *o.Bitrate != 1_000_000 {
		t.Errorf("values: got %+v", o)
	}
	o.Set("fps", "fast")
	err := Validate(Spec{Kind: KindVideo, Input: "https://example.com/a", Options: o}, Policy{})
	if p := ittybit.Problems(err); len(p) != 1 || p[0].Field != "fps" || !strings.Contains(p[0].Message, `got "fast"`) {
		t.Errorf("bad flag value: got %v", err)
	}
}
