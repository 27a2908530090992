package ffmpeg

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Sources the golden cases are planned against.
var (
	srcHD = encoders.MediaInfo{
		Format: "mov", Duration: 10, Width: 1920, Height: 1080, FPS: 30, FrameRate: "30/1", SampleAspect: "1:1",
		Codecs: encoders.Codecs{Video: "h264", Audio: "aac"}, HasVideo: true, HasAudio: true, AudioChannels: 2, SampleRate: 48000,
	}
	srcSilent = func() encoders.MediaInfo {
		m := srcHD
		m.HasAudio, m.Codecs.Audio, m.AudioChannels = false, "", 0
		return m
	}()
	srcRotated = func() encoders.MediaInfo { m := srcHD; m.Width, m.Height, m.Rotation = 1080, 1920, 90; return m }()
	srcOdd     = func() encoders.MediaInfo { m := srcHD; m.Width, m.Height = 721, 405; return m }()
	srcAnamorf = func() encoders.MediaInfo { m := srcHD; m.Width, m.Height, m.SampleAspect = 720, 480, "32:27"; return m }()
	src60      = func() encoders.MediaInfo { m := srcHD; m.FPS, m.FrameRate = 60, "60/1"; return m }()
	src51      = func() encoders.MediaInfo { m := srcHD; m.AudioChannels = 6; return m }()
	srcAudio   = encoders.MediaInfo{Format: "wav", Duration: 30, HasAudio: true, Codecs: encoders.Codecs{Audio: "pcm_s24le"}, AudioChannels: 2, SampleRate: 48000, AudioBits: 24}
)

type goldenCase struct {
	name    string
	kind    encoders.Kind
	options string
	src     encoders.MediaInfo
}

func goldenCases() []goldenCase {
	v, a, i, h := encoders.KindVideo, encoders.KindAudio, encoders.KindImage, encoders.KindAdaptive
	cases := []goldenCase{
		// Each kind × format × codec.
		{"video_mp4_h264", v, `{"format":"mp4","codec":"h264"}`, srcHD},
		{"video_mp4_h265", v, `{"format":"mp4","codec":"h265"}`, srcHD},
		{"video_mp4_av1", v, `{"format":"mp4","codec":"av1"}`, srcHD},
		{"video_mov_h264", v, `{"format":"mov","codec":"h264"}`, srcHD},
		{"video_mov_h265", v, `{"format":"mov","codec":"h265"}`, srcHD},
		{"video_webm_vp9", v, `{"format":"webm","codec":"vp9"}`, srcHD},
		{"video_webm_av1", v, `{"format":"webm","codec":"av1"}`, srcHD},
		{"video_no_audio", v, `{}`, srcSilent},
		{"audio_mp3", a, `{"format":"mp3"}`, srcHD},
		{"audio_aac", a, `{"format":"aac"}`, srcHD},
		{"audio_ogg", a, `{"format":"ogg"}`, srcHD},
		{"audio_opus", a, `{"format":"opus"}`, srcHD},
		{"audio_wav", a, `{"format":"wav"}`, srcHD},
		{"audio_wav_24bit", a, `{"format":"wav"}`, srcAudio},
		{"audio_flac", a, `{"format":"flac"}`, srcAudio},
		{"audio_surround_downmix", a, `{"format":"aac"}`, src51},
		{"image_jpeg", i, `{"format":"jpeg"}`, srcHD},
		{"image_png", i, `{"format":"png"}`, srcHD},
		{"image_webp", i, `{"format":"webp"}`, srcHD},
		{"image_gif", i, `{"format":"gif"}`, srcHD},
		{"image_avif", i, `{"format":"avif"}`, srcHD},
		{"adaptive_hls", h, `{"format":"hls"}`, srcHD},
		{"adaptive_hls_no_audio", h, `{}`, srcSilent},
		{"adaptive_hls_60fps", h, `{}`, src60},
		{"adaptive_hls_box_cover", h, `{"width":640,"height":640,"fit":"cover"}`, srcHD},
		// Fit, position, background.
		{"fit_contain_center_background", v, `{"width":640,"height":640,"fit":"contain","background":"#336699"}`, srcHD},
		{"fit_contain_bottom_left", v, `{"width":640,"height":640,"fit":"contain","position":"bottom_left"}`, srcHD},
		{"fit_contain_portrait_right", v, `{"width":1280,"height":720,"fit":"contain","position":"right","background":"#fff"}`, srcRotated},
		{"fit_cover_top_right", v, `{"width":640,"height":640,"fit":"cover","position":"top_right"}`, srcHD},
		{"fit_cover_center_image", i, `{"width":300,"height":300,"fit":"cover"}`, srcRotated},
		{"fit_fill", v, `{"width":640,"height":640,"fit":"fill"}`, srcHD},
		{"image_contain_background", i, `{"format":"png","width":400,"height":400,"fit":"contain","background":"#ff0000","position":"top"}`, srcHD},
		// Percentages and odd sources.
		{"percent_width", v, `{"width":"50%"}`, srcHD},
		{"percent_both", v, `{"width":"50%","height":"25%","fit":"fill"}`, srcOdd},
		{"odd_source_even_output", v, `{}`, srcOdd},
		{"anamorphic_source", v, `{}`, srcAnamorf},
		{"rotated_width", v, `{"width":540}`, srcRotated},
		// Trims.
		{"trim_video", v, `{"start":2,"end":4.5}`, srcHD},
		{"trim_start_only", v, `{"start":3}`, srcHD},
		{"trim_audio", a, `{"format":"mp3","start":1.25,"end":5}`, srcHD},
		{"image_start", i, `{"start":5,"format":"webp","width":640}`, srcHD},
		// Frame rate.
		{"fps_24", v, `{"fps":24}`, srcHD},
		{"fps_ntsc", v, `{"fps":29.97}`, src60},
		// Bitrate.
		{"bitrate_h264", v, `{"bitrate":2500000}`, srcHD},
		{"bitrate_h265", v, `{"codec":"h265","bitrate":1500000}`, srcHD},
		{"bitrate_vp9", v, `{"codec":"vp9","bitrate":1000000}`, srcHD},
		{"bitrate_av1", v, `{"codec":"av1","bitrate":800000}`, srcHD},
		{"bitrate_audio_mp3", a, `{"format":"mp3","bitrate":192000}`, srcHD},
		{"bitrate_audio_opus", a, `{"format":"opus","bitrate":96000}`, srcHD},
		// The seed's video example.
		{"seed_video", v, `{"width":1280,"height":720,"format":"mp4","quality":"high"}`, srcHD},
	}
	for _, q := range encoders.Qualities {
		cases = append(cases,
			goldenCase{"quality_h264_" + string(q), v, `{"quality":"` + string(q) + `"}`, srcHD},
			goldenCase{"quality_vp9_" + string(q), v, `{"codec":"vp9","quality":"` + string(q) + `"}`, srcHD},
			goldenCase{"quality_jpeg_" + string(q), i, `{"quality":"` + string(q) + `"}`, srcHD},
			goldenCase{"quality_mp3_" + string(q), a, `{"quality":"` + string(q) + `"}`, srcHD},
		)
	}
	// An agent's --encode-threads 2, in each software encoder and the
	// ladder.
	for _, c := range []string{"h264", "h265", "vp9", "av1"} {
		cases = append(cases, goldenCase{threadsPrefix + c, v, `{"codec":"` + c + `"}`, srcHD})
	}
	cases = append(cases, goldenCase{threadsPrefix + "hls", h, `{}`, srcHD}, goldenCase{threadsPrefix + "image", i, `{}`, srcHD})
	return cases
}

// threadsPrefix names the golden cases whose plan runs with Threads 2.
const threadsPrefix = "threads2_"

// TestArgsGolden renders each case's ffmpeg arguments, one per line, and
// compares them with testdata/golden/<case>.golden. Run with -update to
// rewrite the files after a deliberate change, and review the diff.
func TestArgsGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			if seen[tc.name] {
				t.Fatalf("duplicate case %s", tc.name)
			}
			seen[tc.name] = true
			var o encoders.Options
			if err := json.Unmarshal([]byte(tc.options), &o); err != nil {
				t.Fatal(err)
			}
			spec := encoders.Spec{Kind: tc.kind, Input: "https://example.com/in.mov", Options: o}
			if err := encoders.Validate(spec, encoders.Policy{}); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			plan, err := encoders.NewPlan(spec, tc.src, encoders.BackendSoftware)
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			if strings.HasPrefix(tc.name, threadsPrefix) {
				plan.Threads = 2
			}
			out := "out" + encoders.Extension(plan.Format)
			if tc.kind == encoders.KindAdaptive {
				out = "out"
			}
			args, err := Args(plan, "in.mov", out)
			if err != nil {
				t.Fatalf("Args: %v", err)
			}
			got := "# " + tc.options + "\n" + strings.Join(args, "\n") + "\n"
			path := filepath.Join("testdata", "golden", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no golden file (run go test ./encoders/ffmpeg -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("arguments differ from %s (run with -update if intended):\n got:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
