package encoderstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Fake GPU hosts (testdata/hosts): what NewFakeHardware can pretend this
// machine is.
const (
	// HostNVIDIA535 has a GeForce RTX 3060 on driver 535: H.264 and HEVC
	// test encodes pass, five sessions; a real NVENC encode fails with a
	// session error, as an over-subscribed consumer card does.
	HostNVIDIA535 = "nvidia-535"
	// HostH100 has two H100s: decoders, no encoder.
	HostH100 = "h100"
	// HostIntelIHD has one render node on Intel's iHD driver: VAAPI and
	// QSV H.264 and HEVC work, VP9 does not.
	HostIntelIHD = "intel-ihd"
	// HostNone has no GPU device node at all.
	HostNone = "none"
)

// FakeHardware is a machine with GPUs that are not there: fake ffmpeg and
// nvidia-smi programs that answer detection and the GPU usage query from a
// host scenario (and hand everything else to the real ffmpeg), and a
// fixture /dev tree.
type FakeHardware struct {
	// Bin is the folder of the fake ffmpeg and nvidia-smi: put it first
	// on PATH.
	Bin string
	// Root is a filesystem root holding the scenario's /dev.
	Root string
	// Env is the environment the fakes need (the scenario, the real
	// ffmpeg): set it in the processes that run them.
	Env []string
}

// NewFakeHardware builds the fake tools (testdata/fakehw, a Go program)
// into a temporary folder for the host scenario named.
func NewFakeHardware(tb testing.TB, host string) FakeHardware {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("encoderstest: cannot find its own source")
	}
	src := filepath.Join(filepath.Dir(file), "testdata")
	scenario := filepath.Join(src, "hosts", host)
	if _, err := os.Stat(scenario); err != nil {
		tb.Fatalf("encoderstest: no host scenario %q: %v", host, err)
	}
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		tb.Fatalf("encoderstest: the fakes need the real ffmpeg: %v", err)
	}
	if real, err = filepath.Abs(real); err != nil {
		tb.Fatal(err)
	}
	bin := tb.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "ffmpeg"), "./fakehw")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("encoderstest: build the fake tools: %v\n%s", err, out)
	}
	if err := os.Link(filepath.Join(bin, "ffmpeg"), filepath.Join(bin, "nvidia-smi")); err != nil {
		tb.Fatal(err)
	}
	return FakeHardware{
		Bin:  bin,
		Root: filepath.Join(scenario, "root"),
		Env:  []string{"ITTYBIT_FAKEHW=" + scenario, "ITTYBIT_FAKEHW_FFMPEG=" + real},
	}
}

// Install puts the fakes first on PATH and sets their environment for the
// rest of the test (and the processes it starts). Tests using it cannot
// run in parallel.
func (f FakeHardware) Install(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", f.Bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, kv := range f.Env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}
