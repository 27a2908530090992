package ffmpeg_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

var clips *encoderstest.Clips

func TestMain(m *testing.M) {
	clips = encoderstest.NewClips()
	code := m.Run()
	clips.Close()
	os.Exit(code)
}

// encode plans kind with options against the clip, encodes it with the
// software encoder into a temporary folder, and returns the result with
// the progress reports.
func encode(t *testing.T, clip encoderstest.Clip, kind encoders.Kind, options string) (encoders.File, []encoders.Progress) {
	t.Helper()
	in := clips.Path(t, clip)
	var o encoders.Options
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		t.Fatal(err)
	}
	spec := encoders.Spec{Kind: kind, Input: in, Options: o}
	if err := encoders.Validate(spec, encoders.Policy{LocalPaths: true}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	prober := &probe.Prober{}
	info, err := prober.Probe(t.Context(), in)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	plan, err := encoders.NewPlan(spec, info, encoders.BackendSoftware)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	out := filepath.Join(t.TempDir(), "out"+encoders.Extension(plan.Format))
	if kind == encoders.KindAdaptive {
		out = filepath.Join(t.TempDir(), "stream", "master.m3u8")
	}
	enc := &ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: prober}
	var mu sync.Mutex
	var reports []encoders.Progress
	f, err := enc.Encode(t.Context(), encoders.Job{Plan: plan, Input: in, Output: out}, func(p encoders.Progress) {
		mu.Lock()
		reports = append(reports, p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Encode %s %s: %v", kind, options, err)
	}
	if f.URL != out {
		t.Errorf("result URL %q, want %q", f.URL, out)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left beside the output", e.Name())
		}
	}
	return f, reports
}

// want is what ffprobe must find in an output.
type want struct {
	format   string // a name in ffprobe's format_name list
	codec    string // video codec, or audio codec for audio outputs
	width    int
	height   int
	duration float64 // seconds, ±0.1; 0: not checked
	fps      float64 // 0: not checked
	pixFmt   string
	audio    string // audio codec of a video output; "-" for none
}

func check(t *testing.T, path string, w want) {
	t.Helper()
	r := encoderstest.Probe(t, path)
	if !slices.Contains(strings.Split(r.Format.FormatName, ","), w.format) {
		t.Errorf("%s: container %q, want %s", path, r.Format.FormatName, w.format)
	}
	if w.duration > 0 && math.Abs(r.Duration()-w.duration) > 0.1 {
		t.Errorf("%s: duration %.3f s, want %.3f ±0.1", path, r.Duration(), w.duration)
	}
	v := r.Video()
	if w.width == 0 { // audio output
		if v != nil {
			t.Errorf("%s: has a video stream (%s)", path, v.CodecName)
		}
		if a := r.Audio(); a == nil || a.CodecName != w.codec {
			t.Errorf("%s: audio %+v, want codec %s", path, a, w.codec)
		}
		return
	}
	if v == nil {
		t.Fatalf("%s: no video stream", path)
	}
	if v.CodecName != w.codec || v.Width != w.width || v.Height != w.height {
		t.Errorf("%s: video %s %dx%d, want %s %dx%d", path, v.CodecName, v.Width, v.Height, w.codec, w.width, w.height)
	}
	if w.pixFmt != "" && v.PixFmt != w.pixFmt {
		t.Errorf("%s: pixel format %s, want %s", path, v.PixFmt, w.pixFmt)
	}
	if w.fps > 0 {
		if got := encoderstest.Rate(v.AvgFrameRate); math.Abs(got-w.fps) > 0.01 {
			t.Errorf("%s: frame rate %s (%.3f), want %.3f", path, v.AvgFrameRate, got, w.fps)
		}
	}
	for _, sd := range v.SideData {
		if sd["side_data_type"] == "Display Matrix" {
			t.Errorf("%s: output keeps rotation metadata %v; it should be applied to the pixels", path, sd)
		}
	}
	switch a := r.Audio(); {
	case w.audio == "-" && a != nil:
		t.Errorf("%s: unexpected audio %s", path, a.CodecName)
	case w.audio != "" && w.audio != "-" && (a == nil || a.CodecName != w.audio):
		t.Errorf("%s: audio %+v, want %s", path, a, w.audio)
	}
}

func TestEncodeVideoFormatsAndCodecs(t *testing.T) {
	for _, tc := range []struct {
		format, codec, ffCodec, container, audio string
	}{
		{"mp4", "h264", "h264", "mp4", "aac"},
		{"mp4", "h265", "hevc", "mp4", "aac"},
		{"mp4", "av1", "av1", "mp4", "aac"},
		{"mov", "h264", "h264", "mov", "aac"},
		{"mov", "h265", "hevc", "mov", "aac"},
		{"webm", "vp9", "vp9", "webm", "opus"},
		{"webm", "av1", "av1", "webm", "opus"},
	} {
		t.Run(tc.format+"/"+tc.codec, func(t *testing.T) {
			t.Parallel()
			// The odd 721×405 source comes out at the nearest even size.
			f, progress := encode(t, encoderstest.Odd, encoders.KindVideo, `{"format":"`+tc.format+`","codec":"`+tc.codec+`","quality":"low"}`)
			check(t, f.URL, want{format: tc.container, codec: tc.ffCodec, width: 720, height: 404, duration: 2, fps: 30, pixFmt: "yuv420p", audio: tc.audio})
			if f.Codec != tc.codec || f.Width != 720 || f.Height != 404 || f.Filesize == 0 {
				t.Errorf("result %+v", f)
			}
			checkProgress(t, progress)
		})
	}
}

// checkProgress: reports never go back, and the last is 1.
func checkProgress(t *testing.T, ps []encoders.Progress) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatal("no progress reported")
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Fraction < ps[i-1].Fraction {
			t.Errorf("progress went back: %v then %v", ps[i-1].Fraction, ps[i].Fraction)
		}
	}
	if last := ps[len(ps)-1]; last.Fraction != 1 {
		t.Errorf("last progress %v, want 1", last.Fraction)
	}
}

func TestEncodeVideoOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clip    encoderstest.Clip
		options string
		want    want
	}{
		{"rotated phone clip", encoderstest.Rotated, `{"width":180}`, want{format: "mp4", codec: "h264", width: 180, height: 320, duration: 2, fps: 30, pixFmt: "yuv420p", audio: "aac"}},
		{"rotated kept size", encoderstest.Rotated, `{}`, want{format: "mp4", codec: "h264", width: 360, height: 640, duration: 2, audio: "aac"}},
		{"no audio", encoderstest.Silent, `{"codec":"vp9"}`, want{format: "webm", codec: "vp9", width: 320, height: 240, duration: 2, audio: "-"}},
		{"60 fps to 30", encoderstest.Sixty, `{"fps":30}`, want{format: "mp4", codec: "h264", width: 320, height: 180, duration: 2, fps: 30, audio: "aac"}},
		{"60 fps to 29.97", encoderstest.Sixty, `{"fps":29.97}`, want{format: "mp4", codec: "h264", width: 320, height: 180, duration: 2, fps: 30000.0 / 1001}},
		{"60 fps kept", encoderstest.Sixty, `{}`, want{format: "mp4", codec: "h264", width: 320, height: 180, duration: 2, fps: 60}},
		{"trim", encoderstest.Long, `{"start":2.5,"end":4}`, want{format: "mp4", codec: "h264", width: 640, height: 360, duration: 1.5, audio: "aac"}},
		{"start only", encoderstest.Long, `{"start":6}`, want{format: "mp4", codec: "h264", width: 640, height: 360, duration: 2}},
		{"percent", encoderstest.Odd, `{"width":"50%"}`, want{format: "mp4", codec: "h264", width: 360, height: 202, duration: 2}},
		{"contain box", encoderstest.Long, `{"width":320,"height":320,"fit":"contain","background":"#ff0000"}`, want{format: "mp4", codec: "h264", width: 320, height: 320}},
		{"cover box", encoderstest.Long, `{"width":200,"height":300,"fit":"cover","position":"left"}`, want{format: "mp4", codec: "h264", width: 200, height: 300}},
		{"fill box", encoderstest.Odd, `{"width":300,"height":300,"fit":"fill"}`, want{format: "mp4", codec: "h264", width: 300, height: 300}},
		{"bitrate", encoderstest.Long, `{"bitrate":400000,"end":2}`, want{format: "mp4", codec: "h264", width: 640, height: 360, duration: 2}},
		{"mov h265 bitrate", encoderstest.Odd, `{"format":"mov","codec":"h265","bitrate":500000}`, want{format: "mov", codec: "hevc", width: 720, height: 404, duration: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, _ := encode(t, tc.clip, encoders.KindVideo, tc.options)
			check(t, f.URL, tc.want)
		})
	}
}

func TestEncodeContainPadsWithBackground(t *testing.T) {
	t.Parallel()
	// 640×360 into 400×400 at the top: the picture fills the top 226 rows
	// and red fills the rest. PNG is lossless, so the color is exact.
	f, _ := encode(t, encoderstest.Long, encoders.KindImage, `{"format":"png","width":400,"height":400,"fit":"contain","position":"top","background":"#ff0000"}`)
	check(t, f.URL, want{format: "png_pipe", codec: "png", width: 400, height: 400})
	if px := encoderstest.Pixel(t, f.URL, 200, 390); px != [3]byte{255, 0, 0} {
		t.Errorf("bottom bar pixel %v, want red", px)
	}
	if px := encoderstest.Pixel(t, f.URL, 200, 100); px == [3]byte{255, 0, 0} {
		t.Errorf("picture pixel is the background color")
	}
}

func TestEncodeAudio(t *testing.T) {
	for _, tc := range []struct {
		format, codec, container string
	}{
		{"mp3", "mp3", "mp3"},
		{"aac", "aac", "aac"},
		{"ogg", "vorbis", "ogg"},
		{"opus", "opus", "ogg"},
		{"wav", "pcm_s16le", "wav"},
		{"flac", "flac", "flac"},
	} {
		t.Run(tc.format+" from video", func(t *testing.T) {
			t.Parallel()
			f, progress := encode(t, encoderstest.Odd, encoders.KindAudio, `{"format":"`+tc.format+`","quality":"high"}`)
			check(t, f.URL, want{format: tc.container, codec: tc.codec, duration: 2})
			checkProgress(t, progress)
		})
		t.Run(tc.format+" from audio", func(t *testing.T) {
			t.Parallel()
			f, _ := encode(t, encoderstest.Sound, encoders.KindAudio, `{"format":"`+tc.format+`","start":0.5,"end":2}`)
			check(t, f.URL, want{format: tc.container, codec: tc.codec, duration: 1.5})
		})
	}
	t.Run("bitrate", func(t *testing.T) {
		t.Parallel()
		f, _ := encode(t, encoderstest.Sound, encoders.KindAudio, `{"format":"mp3","bitrate":64000}`)
		check(t, f.URL, want{format: "mp3", codec: "mp3", duration: 3})
		if f.Bitrate < 56_000 || f.Bitrate > 72_000 {
			t.Errorf("bitrate %d, want about 64000", f.Bitrate)
		}
	})
}

func TestEncodeImages(t *testing.T) {
	for _, tc := range []struct {
		format, codec, container string
	}{
		{"jpeg", "mjpeg", "image2"},
		{"png", "png", "png_pipe"},
		{"webp", "webp", "webp_pipe"},
		{"gif", "gif", "gif"},
		{"avif", "av1", "mov"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			f, _ := encode(t, encoderstest.Long, encoders.KindImage, `{"format":"`+tc.format+`","start":5,"width":161}`)
			// Images keep odd sizes: 161 × 360/640 = 90.6 → 91.
			check(t, f.URL, want{format: tc.container, codec: tc.codec, width: 161, height: 91})
		})
	}
	t.Run("frame time picks the frame", func(t *testing.T) {
		t.Parallel()
		// testsrc2 draws a moving picture: frames at 1 s and 5 s differ.
		a, _ := encode(t, encoderstest.Long, encoders.KindImage, `{"format":"png","start":1}`)
		b, _ := encode(t, encoderstest.Long, encoders.KindImage, `{"format":"png","start":5}`)
		da, _ := os.ReadFile(a.URL)
		db, _ := os.ReadFile(b.URL)
		if string(da) == string(db) {
			t.Error("frames at 1 s and 5 s are identical")
		}
	})
	t.Run("after the last frame", func(t *testing.T) {
		t.Parallel()
		f, _ := encode(t, encoderstest.Silent, encoders.KindImage, `{"start":1.99}`)
		check(t, f.URL, want{format: "image2", codec: "mjpeg", width: 320, height: 240})
	})
	t.Run("rotated", func(t *testing.T) {
		t.Parallel()
		f, _ := encode(t, encoderstest.Rotated, encoders.KindImage, `{"format":"webp","height":100}`)
		check(t, f.URL, want{format: "webp_pipe", codec: "webp", width: 56, height: 100})
	})
}

func TestEncodeHLS(t *testing.T) {
	t.Parallel()
	f, progress := encode(t, encoderstest.Long, encoders.KindAdaptive, `{"quality":"low"}`)
	checkProgress(t, progress)
	checkLadder(t, f)
}

// checkLadder checks the HLS result of the Long clip: two variants fully
// described in the master, an audio rendition, every segment of every
// rendition starting on a key frame at the same time in all of them. It
// returns the segments' start times.
func checkLadder(t *testing.T, f encoders.File) []float64 {
	t.Helper()
	dir := filepath.Dir(f.URL)
	master, err := os.ReadFile(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	variants := parseMaster(t, string(master))
	// 360p source: renditions 360p and 234p, no rendition above the source.
	if len(variants) != 2 {
		t.Fatalf("got %d variants, want 2:\n%s", len(variants), master)
	}
	if !strings.Contains(string(master), `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"`) {
		t.Errorf("no audio rendition in the master:\n%s", master)
	}
	var boundaries [][]float64
	for _, v := range variants {
		for _, a := range []string{"BANDWIDTH", "AVERAGE-BANDWIDTH", "RESOLUTION", "CODECS", "FRAME-RATE", "AUDIO"} {
			if v.attrs[a] == "" {
				t.Errorf("variant %s lacks %s", v.uri, a)
			}
		}
		if !strings.HasPrefix(v.attrs["CODECS"], `"avc1.64`) || !strings.Contains(v.attrs["CODECS"], "mp4a.40.2") {
			t.Errorf("variant %s CODECS %s", v.uri, v.attrs["CODECS"])
		}
		playlist := filepath.Join(dir, v.uri)
		r := encoderstest.Probe(t, playlist)
		vs := r.Video()
		if vs == nil || vs.CodecName != "h264" || v.attrs["RESOLUTION"] != itoa(vs.Width)+"x"+itoa(vs.Height) {
			t.Errorf("variant %s: probed %+v, master says %s", v.uri, vs, v.attrs["RESOLUTION"])
		}
		if vs != nil && vs.Height > 360 {
			t.Errorf("variant %s is above the 360p source", v.uri)
		}
		data, err := os.ReadFile(playlist)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := ffmpeg.ParseMediaPlaylist(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(pl.Segments) < 2 {
			t.Fatalf("variant %s has %d segments, want at least 2", v.uri, len(pl.Segments))
		}
		keys := encoderstest.Keyframes(t, playlist)
		var starts []float64
		at := keys[0]
		for _, s := range pl.Segments {
			starts = append(starts, at)
			if !slices.ContainsFunc(keys, func(k float64) bool { return math.Abs(k-at) < 0.002 }) {
				t.Errorf("variant %s: segment %s starts at %.3f, which is not a keyframe (keyframes %v)", v.uri, s.URI, at, keys)
			}
			at += s.Duration
		}
		boundaries = append(boundaries, starts)
	}
	for i := 1; i < len(boundaries); i++ {
		if !slices.EqualFunc(boundaries[0], boundaries[i], func(a, b float64) bool { return math.Abs(a-b) < 0.002 }) {
			t.Errorf("segment boundaries differ between renditions: %v and %v", boundaries[0], boundaries[i])
		}
	}
	a := encoderstest.Probe(t, filepath.Join(dir, "audio", "index.m3u8")).Audio()
	if a == nil || a.CodecName != "aac" || a.Channels != 2 {
		t.Errorf("audio rendition: %+v", a)
	}
	if len(f.Renditions) != 3 || f.Format != "hls" || f.Width != 640 || f.Height != 360 {
		t.Errorf("result %+v", f)
	}
	return boundaries[0]
}

type variant struct {
	uri   string
	attrs map[string]string
}

func parseMaster(t *testing.T, master string) []variant {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(master), "\n")
	if lines[0] != "#EXTM3U" {
		t.Fatalf("master playlist without #EXTM3U:\n%s", master)
	}
	var out []variant
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "#EXT-X-STREAM-INF:")
		if !ok {
			continue
		}
		attrs := map[string]string{}
		for rest != "" {
			k, r, _ := strings.Cut(rest, "=")
			var val string
			if strings.HasPrefix(r, `"`) {
				end := strings.Index(r[1:], `"`) + 2
				val, rest = r[:end], strings.TrimPrefix(r[end:], ",")
			} else {
				val, rest, _ = strings.Cut(r, ",")
			}
			attrs[k] = val
		}
		out = append(out, variant{uri: lines[i+1], attrs: attrs})
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestEncodeCancel(t *testing.T) {
	t.Parallel()
	in := clips.Path(t, encoderstest.Long)
	info, err := (&probe.Prober{}).Probe(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindVideo, Options: encoders.Options{Codec: "av1", Quality: encoders.QualityVeryHigh}}, info, encoders.BackendSoftware)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.mp4")
	ctx, cancel := context.WithCancel(t.Context())
	enc := &ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: &probe.Prober{}}
	_, err = enc.Encode(ctx, encoders.Job{Plan: plan, Input: in, Output: out}, func(p encoders.Progress) {
		if p.Fraction > 0 {
			cancel()
		}
	})
	if ittybit.KindOf(err) != ittybit.ErrCancelled {
		t.Fatalf("got %v, want cancelled", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("cancelled encode left %d files behind", len(entries))
	}
}
