package detect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestParseEncoders(t *testing.T) {
	got := ParseEncoders(fixture(t, "ffmpeg-encoders-debian-5.1.txt"))
	for _, name := range []string{"libx264", "libx265", "libvpx-vp9", "libsvtav1", "h264_nvenc", "hevc_nvenc", "h264_vaapi", "h264_qsv", "aac", "libopus"} {
		if !got[name] {
			t.Errorf("%s missing", name)
		}
	}
	// Debian's 5.1 has no AV1 hardware encoders; the legend is no encoder.
	for _, name := range []string{"av1_nvenc", "av1_vaapi", "=", "V.....", "Video"} {
		if got[name] {
			t.Errorf("%s listed", name)
		}
	}
	if len(got) < 150 {
		t.Errorf("only %d encoders", len(got))
	}
}

func TestParseFilters(t *testing.T) {
	got := ParseFilters(fixture(t, "ffmpeg-filters-debian-5.1.txt"))
	for _, name := range []string{"scale", "pad", "crop", "scale_cuda", "hwupload_cuda", "scale_vaapi", "vpp_qsv", "hwupload", "hwdownload", "yadif_cuda"} {
		if !got[name] {
			t.Errorf("%s missing", name)
		}
	}
	// pad_cuda came with ffmpeg 8.0, pad_vaapi with 6.1.
	for _, name := range []string{"pad_cuda", "pad_vaapi", "=", "Timeline"} {
		if got[name] {
			t.Errorf("%s listed", name)
		}
	}
	want := []string{"hwdownload", "hwmap", "hwupload", "hwupload_cuda", "scale_cuda"}
	if g := gpuFilters(got); !containsAll(g, want) || containsAny(g, "scale", "pad_opencl") {
		t.Errorf("gpuFilters = %v", g)
	}
}

func containsAll(list, want []string) bool {
	for _, w := range want {
		if !containsAny(list, w) {
			return false
		}
	}
	return true
}

func containsAny(list []string, names ...string) bool {
	for _, l := range list {
		for _, n := range names {
			if l == n {
				return true
			}
		}
	}
	return false
}

func TestParseGPUs(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []GPU
	}{
		{"nvidia-smi-geforce-535.csv", []GPU{{"0", "NVIDIA GeForce RTX 3060", "535.104.05"}}},
		{"nvidia-smi-h100.csv", []GPU{{"0", "NVIDIA H100 80GB HBM3", "550.54.15"}, {"1", "NVIDIA H100 80GB HBM3", "550.54.15"}}},
		{"nvidia-smi-mixed.csv", []GPU{{"0", "NVIDIA RTX A4000", "590.44.01"}, {"1", "Tesla T4", "590.44.01"}, {"2", "NVIDIA T1000", "590.44.01"}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseGPUs(fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", "0\n"} {
		if _, err := ParseGPUs(bad); err == nil {
			t.Errorf("ParseGPUs(%q) succeeded", bad)
		}
	}
}

func TestParseVAAPIDriver(t *testing.T) {
	for _, tc := range []struct {
		file, name, description, err string
	}{
		{"vaapi-ihd.txt", "iHD", "Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ()", ""},
		{"vaapi-i965.txt", "i965", "Intel i965 driver for Intel(R) Haswell Desktop - 2.4.1", ""},
		{"vaapi-mesa.txt", "Mesa Gallium", "Mesa Gallium driver 22.3.6 for AMD Radeon RX 6600 (navi23, LLVM 15.0.6, DRM 3.49, 6.1.0-13-amd64)", ""},
		{"vaapi-no-device.txt", "", "", "Failed to open /dev/dri/renderD128 as DRM device node."},
	} {
		t.Run(tc.file, func(t *testing.T) {
			name, desc, err := ParseVAAPIDriver(fixture(t, tc.file))
			if name != tc.name || desc != tc.description {
				t.Errorf("got %q, %q; want %q, %q", name, desc, tc.name, tc.description)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestSessionLimit(t *testing.T) {
	for _, tc := range []struct {
		gpu, driver string
		want        int
	}{
		{"NVIDIA GeForce GTX 1080", "470.223.02", 3},
		{"NVIDIA GeForce RTX 3060", "529.99", 3},
		{"NVIDIA GeForce RTX 3060", "530.30.02", 5},
		{"NVIDIA GeForce RTX 3060", "535.104.05", 5},
		{"NVIDIA GeForce RTX 3060", "546.01", 5},
		{"NVIDIA GeForce RTX 4090", "550.54.15", 8},
		{"NVIDIA GeForce RTX 4090", "580.65.06", 8},
		{"NVIDIA GeForce RTX 5090", "590.44.01", 12},
		{"NVIDIA TITAN RTX", "535.104.05", 5},
		{"NVIDIA T1000", "535.104.05", 5},
		{"Quadro P620", "535.104.05", 5},
		{"NVIDIA GeForce RTX 3060", "", 3},
		{"Some Future Card", "535.104.05", 5},
		// Data-centre and professional cards: no limit.
		{"Tesla T4", "535.104.05", 0},
		{"NVIDIA L4", "550.54.15", 0},
		{"NVIDIA A10", "535.104.05", 0},
		{"NVIDIA RTX A4000", "535.104.05", 0},
		{"NVIDIA RTX 4000 Ada Generation", "535.104.05", 0},
		{"Quadro RTX 4000", "470.223.02", 0},
	} {
		if got := SessionLimit(tc.gpu, tc.driver); got != tc.want {
			t.Errorf("SessionLimit(%q, %q) = %d, want %d", tc.gpu, tc.driver, got, tc.want)
		}
	}
}

func TestDecodeOnly(t *testing.T) {
	for gpu, want := range map[string]bool{
		"NVIDIA H100 80GB HBM3": true, "NVIDIA H100 PCIe": true, "NVIDIA H200": true, "NVIDIA A100-SXM4-80GB": true,
		"NVIDIA A100 80GB PCIe": true, "NVIDIA A30": true, "NVIDIA GH200 480GB": true,
		"NVIDIA GeForce RTX 3060": false, "NVIDIA RTX A3000": false, "NVIDIA L40S": false, "Tesla T4": false, "NVIDIA A10": false,
	} {
		if got := DecodeOnly(gpu); got != want {
			t.Errorf("DecodeOnly(%q) = %v, want %v", gpu, got, want)
		}
	}
}

func TestParseGPUUsage(t *testing.T) {
	p := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		fixture string
		want    []GPUUsage
	}{
		{"nvidia-smi-usage-geforce.csv", []GPUUsage{{Index: "0", EncoderUtilization: p(0.37), DecoderUtilization: p(0.05), EncoderSessions: p(2)}}},
		// No NVENC on an H100: the encoder figures are not reported.
		{"nvidia-smi-usage-h100.csv", []GPUUsage{{Index: "0", DecoderUtilization: p(0.14)}, {Index: "1", DecoderUtilization: p(0)}}},
		{"nvidia-smi-usage-mixed.csv", []GPUUsage{
			{Index: "0", EncoderUtilization: p(1), DecoderUtilization: p(0.62), EncoderSessions: p(9)},
			{Index: "1", EncoderUtilization: p(0), DecoderUtilization: p(0), EncoderSessions: p(0)},
			{Index: "2", EncoderSessions: p(0)},
		}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			got, err := ParseGPUUsage(fixture(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			approx := cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
			if diff := cmp.Diff(tc.want, got, approx); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseGPUUsageRefuses(t *testing.T) {
	for name, out := range map[string]string{
		"empty":         "",
		"no driver":     "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
		"unknown field": `Field "encoder.stats.sessionCount" is not a valid field to query.` + "\n",
		"negative":      "0, -1, 0, 0\n",
		"with header":   "index, utilization.encoder [%], utilization.decoder [%], encoder.stats.sessionCount\n0, 1, 2, 3\n",
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := ParseGPUUsage(out); err == nil {
				t.Errorf("parsed %+v, want an error", got)
			}
		})
	}
}
