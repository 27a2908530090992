package detect_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
)

// TestDetectCache: with a CacheDir, a backend's report is reused while the
// ffmpeg binary and the device nodes stay the same, and detected again
// when either changes or the cache is cleared.
func TestDetectCache(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	encodersList, err := os.ReadFile("testdata/ffmpeg-encoders-debian-5.1.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "encoders.txt"), encodersList, 0o644); err != nil {
		t.Fatal(err)
	}
	ffmpeg := filepath.Join(dir, "ffmpeg")
	// Counts its runs, then prints Debian's encoder list.
	script := "#!/bin/sh\necho run >> " + calls + "\ncat " + filepath.Join(dir, "encoders.txt") + "\n"
	if err := os.WriteFile(ffmpeg, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "dev", "dri"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	cfg := detect.Config{Root: root, FFmpeg: ffmpeg, NvidiaSMI: filepath.Join(dir, "no-nvidia-smi"), CacheDir: cache}
	runs := func() int {
		b, _ := os.ReadFile(calls)
		return strings.Count(string(b), "run")
	}
	detectOnce := func() detect.Report {
		t.Helper()
		r, err := detect.Detect(t.Context(), cfg, encoders.BackendSoftware)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	first := detectOnce()
	n := runs()
	if n == 0 {
		t.Fatal("detection did not run ffmpeg")
	}
	if again := detectOnce(); runs() != n || !cmp.Equal(again, first) {
		t.Fatalf("second detection: %d ffmpeg runs (want %d, from the cache), report changed: %s", runs(), n, cmp.Diff(first, again))
	}
	fresh := cfg
	fresh.CacheDir = ""
	if uncached, _ := detect.Detect(t.Context(), fresh, encoders.BackendSoftware); !cmp.Equal(uncached, first) {
		t.Errorf("the cached report differs from a fresh one: %s", cmp.Diff(uncached, first))
	}
	n = runs()

	// A render node appears: the key changes.
	if err := os.WriteFile(filepath.Join(root, "dev", "dri", "renderD128"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	detectOnce()
	if runs() == n {
		t.Error("a new device node did not make detection run again")
	}
	n = runs()

	// ffmpeg is upgraded (another file at the same path).
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(ffmpeg, later, later); err != nil {
		t.Fatal(err)
	}
	detectOnce()
	if runs() == n {
		t.Error("a changed ffmpeg binary did not make detection run again")
	}
	n = runs()

	if err := detect.ClearCache(cache); err != nil {
		t.Fatal(err)
	}
	detectOnce()
	if runs() == n {
		t.Error("detection did not run again after the cache was cleared (ittybit encoders --refresh)")
	}
}
