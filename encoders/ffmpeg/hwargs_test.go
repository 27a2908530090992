package ffmpeg

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Devices the hardware golden cases run on: the GPU filters of Debian's
// ffmpeg 5.1, and of builds with the GPU pad filters (pad_vaapi since 6.1,
// pad_cuda since 8.0).
var (
	hwFilters51 = []string{"hwdownload", "hwmap", "hwupload", "hwupload_cuda", "scale_cuda", "scale_qsv", "scale_vaapi", "vpp_qsv"}
	hwFilters8  = append([]string{"pad_cuda", "pad_vaapi"}, hwFilters51...)
	devCUDA     = Device{Path: "0", Filters: hwFilters51}
	devCUDAPad  = Device{Path: "1", Filters: hwFilters8}
	devIHD      = Device{Path: "/dev/dri/renderD128", Driver: "iHD", Filters: hwFilters51}
	devIHDPad   = Device{Path: "/dev/dri/renderD128", Driver: "iHD", Filters: hwFilters8}
	devI965     = Device{Path: "/dev/dri/renderD129", Driver: "i965", Filters: hwFilters51}

	// srcGPU is a source every GPU decodes: H.264, 8-bit 4:2:0.
	srcGPU = func() encoders.MediaInfo { m := srcHD; m.PixelFmt = "yuv420p"; return m }()
	// srcGPURotated needs autorotation, a CPU filter.
	srcGPURotated = func() encoders.MediaInfo { m := srcRotated; m.PixelFmt = "yuv420p"; return m }()
	// src10bit is HEVC Main 10: decoded on the CPU here.
	src10bit = func() encoders.MediaInfo {
		m := srcGPU
		m.Codecs.Video, m.PixelFmt = "hevc", "yuv420p10le"
		return m
	}()
	src60GPU = func() encoders.MediaInfo { m := src60; m.PixelFmt = "yuv420p"; return m }()
)

type hwGoldenCase struct {
	name    string
	backend encoders.Backend
	dev     Device
	kind    encoders.Kind
	options string
	src     encoders.MediaInfo
}

func hwGoldenCases() []hwGoldenCase {
	v, h := encoders.KindVideo, encoders.KindAdaptive
	var cases []hwGoldenCase
	devs := map[encoders.Backend][2]Device{
		encoders.BackendNVENC: {devCUDA, devCUDAPad},
		encoders.BackendQSV:   {devIHD, devIHDPad},
		encoders.BackendVAAPI: {devIHD, devIHDPad},
	}
	for _, b := range []encoders.Backend{encoders.BackendNVENC, encoders.BackendQSV, encoders.BackendVAAPI} {
		d51, d8 := devs[b][0], devs[b][1]
		for _, c := range []hwGoldenCase{
			// The full GPU path: decode, scale, encode on the device.
			{"video_h264", b, d51, v, `{"width":1280,"height":720,"quality":"high"}`, srcGPU},
			{"video_h265_mov", b, d51, v, `{"format":"mov","codec":"h265"}`, srcGPU},
			{"bitrate", b, d51, v, `{"bitrate":2500000}`, srcGPU},
			{"fps_trim", b, d51, v, `{"fps":24,"start":1,"end":4}`, src60GPU},
			{"anamorphic", b, d51, v, `{}`, func() encoders.MediaInfo { m := srcAnamorf; m.PixelFmt = "yuv420p"; return m }()},
			// Contain with bars: a GPU pad filter where the build has one,
			// else pad on the CPU between download and upload.
			{"contain_background", b, d51, v, `{"width":640,"height":640,"fit":"contain","background":"#336699"}`, srcGPU},
			{"contain_background_gpu_pad", b, d8, v, `{"width":640,"height":640,"fit":"contain","background":"#336699"}`, srcGPU},
			// Cover: QSV crops in vpp_qsv, the others on the CPU.
			{"cover_top_right", b, d51, v, `{"width":640,"height":640,"fit":"cover","position":"top_right"}`, srcGPU},
			// Sources decoded on the CPU, then uploaded once.
			{"rotated_source", b, d51, v, `{"width":540}`, srcGPURotated},
			{"ten_bit_source", b, d51, v, `{"width":1280}`, src10bit},
			{"unknown_pixel_format", b, d51, v, `{"width":1280}`, srcHD},
			{"no_gpu_filters", b, Device{Path: d51.Path}, v, `{"width":640,"height":640,"fit":"cover"}`, srcGPU},
			// HLS: fixed GOP per rendition, each rung scaled on the GPU.
			{"adaptive_hls", b, d51, h, `{}`, srcGPU},
			{"adaptive_hls_60fps", b, d51, h, `{"quality":"low"}`, src60GPU},
			{"adaptive_hls_box_cover", b, d51, h, `{"width":640,"height":640,"fit":"cover"}`, srcGPU},
			{"adaptive_hls_cpu_decode", b, d51, h, `{}`, srcGPURotated},
		} {
			c.name = string(b) + "_" + c.name
			cases = append(cases, c)
		}
	}
	return append(cases,
		hwGoldenCase{"vaapi_i965_bitrate", encoders.BackendVAAPI, devI965, v, `{"bitrate":4000000}`, srcGPU},
		hwGoldenCase{"nvenc_av1", encoders.BackendNVENC, devCUDA, v, `{"format":"webm","codec":"av1"}`, srcGPU},
		hwGoldenCase{"qsv_vp9", encoders.BackendQSV, devIHD, v, `{"format":"webm","codec":"vp9","quality":"very_high"}`, srcGPU},
	)
}

// TestHardwareArgsGolden renders each hardware case's ffmpeg arguments and
// compares them with testdata/golden/hw_<case>.golden (-update rewrites
// them). These command lines follow docs/hardware.md §2; no GPU ran them
// here.
func TestHardwareArgsGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range hwGoldenCases() {
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
			plan, err := encoders.NewPlan(spec, tc.src, tc.backend)
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			out := "out" + encoders.Extension(plan.Format)
			if tc.kind == encoders.KindAdaptive {
				out = "out"
			}
			args, err := DeviceArgs(plan, tc.dev, "in.mov", out)
			if err != nil {
				t.Fatalf("DeviceArgs: %v", err)
			}
			got := "# " + tc.options + "\n" + strings.Join(args, "\n") + "\n"
			compareGolden(t, filepath.Join("testdata", "golden", "hw_"+tc.name+".golden"), got)
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
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
}

func TestHardwareRefusesAudioAndImages(t *testing.T) {
	for _, kind := range []encoders.Kind{encoders.KindAudio, encoders.KindImage} {
		plan, err := encoders.NewPlan(encoders.Spec{Kind: kind, Input: "in.mov"}, srcGPU, encoders.BackendNVENC)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DeviceArgs(plan, devCUDA, "in.mov", "out"); err == nil {
			t.Errorf("%s on nvenc: no error", kind)
		}
	}
}
