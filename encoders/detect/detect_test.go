package detect_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
)

// rows builds the four codec rows of one backend and device: available
// unless reasons names the codec.
func rows(b encoders.Backend, device string, sessions int, reasons map[string]string) []encoders.Capability {
	var out []encoders.Capability
	for _, codec := range encoders.VideoCodecs {
		out = append(out, encoders.Capability{
			Backend: b, Codec: codec, Device: device, MaxSessions: sessions,
			Available: reasons[codec] == "", Reason: reasons[codec],
		})
	}
	return out
}

// all gives every codec the same reason.
func all(reason string) map[string]string {
	m := map[string]string{}
	for _, c := range encoders.VideoCodecs {
		m[c] = reason
	}
	return m
}

const (
	noNVIDIA = "no NVIDIA GPU: no /dev/nvidia[0-9] device node"
	noRender = "no GPU: no /dev/dri/renderD* render node"
	rtx3060  = "GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)"
	h100     = " has no NVENC: decode only (NVDEC present); encode in software"
)

// TestDetectHosts runs every detector on fake hosts: the fake ffmpeg and
// nvidia-smi on PATH answer from the scenario, /dev is a fixture tree.
func TestDetectHosts(t *testing.T) {
	software := rows(encoders.BackendSoftware, "", 0, nil)
	for _, tc := range []struct {
		host    string
		want    map[encoders.Backend][]encoders.Capability
		devices map[encoders.Backend][]detect.Device
	}{
		{
			host: encoderstest.HostNVIDIA535,
			want: map[encoders.Backend][]encoders.Capability{
				encoders.BackendSoftware: software,
				encoders.BackendNVENC: rows(encoders.BackendNVENC, rtx3060, 5, map[string]string{
					"vp9": "NVENC has no VP9 encoder", "av1": "this ffmpeg has no av1_nvenc encoder",
				}),
				encoders.BackendQSV:   rows(encoders.BackendQSV, "", 0, all(noRender)),
				encoders.BackendVAAPI: rows(encoders.BackendVAAPI, "", 0, all(noRender)),
			},
			devices: map[encoders.Backend][]detect.Device{
				encoders.BackendNVENC: {{ID: rtx3060, Path: "0", Name: "NVIDIA GeForce RTX 3060", Driver: "535.104.05", MaxSessions: 5}},
			},
		},
		{
			host: encoderstest.HostH100,
			want: map[encoders.Backend][]encoders.Capability{
				encoders.BackendSoftware: software,
				encoders.BackendNVENC: append(
					rows(encoders.BackendNVENC, "GPU 0: NVIDIA H100 80GB HBM3 (driver 550.54.15)", 0, all("NVIDIA H100 80GB HBM3"+h100)),
					rows(encoders.BackendNVENC, "GPU 1: NVIDIA H100 80GB HBM3 (driver 550.54.15)", 0, all("NVIDIA H100 80GB HBM3"+h100))...),
				encoders.BackendQSV:   rows(encoders.BackendQSV, "", 0, all(noRender)),
				encoders.BackendVAAPI: rows(encoders.BackendVAAPI, "", 0, all(noRender)),
			},
			devices: map[encoders.Backend][]detect.Device{
				encoders.BackendNVENC: {
					{ID: "GPU 0: NVIDIA H100 80GB HBM3 (driver 550.54.15)", Path: "0", Name: "NVIDIA H100 80GB HBM3", Driver: "550.54.15", DecodeOnly: true},
					{ID: "GPU 1: NVIDIA H100 80GB HBM3 (driver 550.54.15)", Path: "1", Name: "NVIDIA H100 80GB HBM3", Driver: "550.54.15", DecodeOnly: true},
				},
			},
		},
		{
			host: encoderstest.HostIntelIHD,
			want: map[encoders.Backend][]encoders.Capability{
				encoders.BackendSoftware: software,
				encoders.BackendNVENC:    rows(encoders.BackendNVENC, "", 0, all(noNVIDIA)),
				encoders.BackendQSV: rows(encoders.BackendQSV, "/dev/dri/renderD128", 0, map[string]string{
					"vp9": "test encode with vp9_qsv failed: Error initializing the encoder: unsupported (-3)",
					"av1": "this ffmpeg has no av1_qsv encoder",
				}),
				encoders.BackendVAAPI: rows(encoders.BackendVAAPI, "/dev/dri/renderD128", 0, map[string]string{
					"vp9": "test encode with vp9_vaapi failed: No usable encoding entrypoint found for profile VAProfileVP9Profile0 (19).",
					"av1": "this ffmpeg has no av1_vaapi encoder",
				}),
			},
			devices: map[encoders.Backend][]detect.Device{
				encoders.BackendVAAPI: {{ID: "/dev/dri/renderD128", Path: "/dev/dri/renderD128", Driver: "iHD"}},
				encoders.BackendQSV:   {{ID: "/dev/dri/renderD128", Path: "/dev/dri/renderD128", Driver: "iHD"}},
			},
		},
		{
			host: encoderstest.HostNone,
			want: map[encoders.Backend][]encoders.Capability{
				encoders.BackendSoftware: software,
				encoders.BackendNVENC:    rows(encoders.BackendNVENC, "", 0, all(noNVIDIA)),
				encoders.BackendQSV:      rows(encoders.BackendQSV, "", 0, all(noRender)),
				encoders.BackendVAAPI:    rows(encoders.BackendVAAPI, "", 0, all(noRender)),
			},
		},
	} {
		t.Run(tc.host, func(t *testing.T) {
			fake := encoderstest.NewFakeHardware(t, tc.host)
			fake.Install(t)
			cfg := detect.Config{Root: fake.Root}
			for _, b := range encoders.Backends {
				r, err := detect.Detect(t.Context(), cfg, b)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want[b], r.Capabilities); diff != "" {
					t.Errorf("%s capabilities (-want +got):\n%s", b, diff)
				}
				if diff := cmp.Diff(tc.devices[b], r.Devices); diff != "" {
					t.Errorf("%s devices (-want +got):\n%s", b, diff)
				}
			}
		})
	}
}

// TestDetectWithoutTools: no ffmpeg, no nvidia-smi, and a GPU device node:
// every row says what is missing.
func TestDetectWithoutTools(t *testing.T) {
	fake := encoderstest.NewFakeHardware(t, encoderstest.HostNVIDIA535)
	cfg := detect.Config{Root: fake.Root, FFmpeg: "/nonexistent/ffmpeg", NvidiaSMI: "/nonexistent/nvidia-smi"}
	sw := detect.Software(t.Context(), cfg)
	if diff := cmp.Diff(rows(encoders.BackendSoftware, "", 0, all("ffmpeg -encoders failed: /nonexistent/ffmpeg not found")), sw.Capabilities); diff != "" {
		t.Errorf("software (-want +got):\n%s", diff)
	}
	nv := detect.NVENC(t.Context(), cfg)
	if diff := cmp.Diff(rows(encoders.BackendNVENC, "", 0, all("nvidia-smi failed: /nonexistent/nvidia-smi not found")), nv.Capabilities); diff != "" {
		t.Errorf("nvenc (-want +got):\n%s", diff)
	}
}

func TestNVENCWithoutDriver(t *testing.T) {
	// The h100 scenario's nvidia-smi answers; point at the fake with no
	// nvidia-smi.txt (the none host) and the 535 host's device nodes.
	fake := encoderstest.NewFakeHardware(t, encoderstest.HostNone)
	fake.Install(t)
	nodes := encoderstest.NewFakeHardware(t, encoderstest.HostNVIDIA535)
	r := detect.NVENC(t.Context(), detect.Config{Root: nodes.Root})
	want := "nvidia-smi failed: exit status 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
	if diff := cmp.Diff(rows(encoders.BackendNVENC, "", 0, all(want)), r.Capabilities); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDetectOnStalledHost: an ffmpeg listing that runs out of time once
// (the host's disk stalls) runs again under twice the bound and software
// detection finds its encoders; one that never answers makes every row say
// so. Neither report is cached, so the next run detects again.
func TestDetectOnStalledHost(t *testing.T) {
	fake := encoderstest.NewFakeHardware(t, encoderstest.HostNone)
	fake.Install(t)
	stalls := filepath.Join(t.TempDir(), "stalls")
	t.Setenv("ITTYBIT_FAKEHW_STALLS", stalls)
	setStalls := func(n int) {
		t.Helper()
		if err := os.WriteFile(stalls, []byte(strconv.Itoa(n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	cfg := detect.Config{Root: fake.Root, Timeout: time.Second, CacheDir: cache}
	cached := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, "detect-*.json"))
		return m
	}
	software := func() []encoders.Capability {
		t.Helper()
		r, err := detect.Detect(t.Context(), cfg, encoders.BackendSoftware)
		if err != nil {
			t.Fatal(err)
		}
		return r.Capabilities
	}

	setStalls(1)
	if diff := cmp.Diff(rows(encoders.BackendSoftware, "", 0, nil), software()); diff != "" {
		t.Errorf("after one stalled listing (-want +got):\n%s", diff)
	}
	if left, _ := os.ReadFile(stalls); string(left) != "0" {
		t.Errorf("the listing did not stall (%q left)", left)
	}
	if c := cached(); len(c) != 0 {
		t.Errorf("a report after a timeout was cached: %v", c)
	}

	setStalls(2)
	want := rows(encoders.BackendSoftware, "", 0, all("ffmpeg -encoders failed: ffmpeg timed out after 2s"))
	if diff := cmp.Diff(want, software()); diff != "" {
		t.Errorf("a listing that never answers (-want +got):\n%s", diff)
	}
	if c := cached(); len(c) != 0 {
		t.Errorf("a report of timeouts was cached: %v", c)
	}

	setStalls(0)
	if diff := cmp.Diff(rows(encoders.BackendSoftware, "", 0, nil), software()); diff != "" {
		t.Errorf("once the host answers (-want +got):\n%s", diff)
	}
	if c := cached(); len(c) != 1 {
		t.Errorf("the report of a host that answered is not cached: %v", c)
	}
}
