package test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hlsPage plays /stream/master.m3u8 through hls.js in a muted video, and
// keeps what happened in window.result.
const hlsPage = `<!doctype html>
<html><body>
<video id="v" muted playsinline></video>
<script src="/hls.min.js"></script>
<script>
window.result = {state: "loading", errors: [], levels: 0, audioTracks: 0, time: 0, width: 0};
const v = document.getElementById("v");
if (!Hls.isSupported()) {
  window.result.state = "unsupported";
} else {
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (e, d) => {
    window.result.errors.push(d.type + ":" + d.details + (d.fatal ? " (fatal)" : ""));
    if (d.fatal) window.result.state = "failed";
  });
  hls.on(Hls.Events.MANIFEST_PARSED, (e, d) => {
    window.result.levels = d.levels.length;
    v.play().catch(err => window.result.errors.push("play: " + err));
  });
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (e, d) => { window.result.audioTracks = d.audioTracks.length; });
  v.addEventListener("timeupdate", () => { window.result.time = v.currentTime; window.result.width = v.videoWidth; });
  v.addEventListener("ended", () => { window.result.state = "ended"; });
  hls.loadSource("/stream/master.m3u8");
  hls.attachMedia(v);
}
</script>
</body></html>`

// chromiumOptions starts Debian's Chromium headless for a test: its
// profile and its temporary files (the singleton socket's folder, which a
// browser stopped by the test leaves behind) in the test's own folders.
func chromiumOptions(t *testing.T, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (make deps installs Debian's): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()), chromedp.Env("TMPDIR="+t.TempDir()))
	return append(opts, extra...)
}

// playback is what the page saw.
type playback struct {
	State       string   `json:"state"`
	Errors      []string `json:"errors"`
	Levels      int      `json:"levels"`
	AudioTracks int      `json:"audioTracks"`
	Time        float64  `json:"time"`
	Width       int      `json:"width"`
}

// playHLS serves the HLS result in dir (master.m3u8 and its renditions)
// with hls.js (test/npm) and plays it in Debian's Chromium, headless,
// until it has played seconds or ended; it returns what the page saw.
func playHLS(t *testing.T, dir string, seconds float64) playback {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/stream/", http.StripPrefix("/stream/", http.FileServer(http.Dir(dir))))
	mux.HandleFunc("/hls.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join("npm", "node_modules", "hls.js", "dist", "hls.min.js"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(hlsPage))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, chromiumOptions(t)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if _, err := chromedp.Run(browser, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	for {
		got, err := chromedp.Run(browser, chromedp.Evaluate[playback](`window.result`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		if got.State == "ended" || got.State == "failed" || got.State == "unsupported" || got.Time >= seconds {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the player got to %.2f s in two minutes: %+v", got.Time, got)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkPlays plays the HLS result in dir and fails unless it played for
// seconds (or to its end) with every variant and the audio rendition
// known to the player and no error.
func checkPlays(t *testing.T, dir string, variants int, seconds float64) {
	t.Helper()
	got := playHLS(t, dir, seconds)
	if got.State == "failed" || got.State == "unsupported" || got.Time < seconds && got.State != "ended" {
		t.Fatalf("hls.js in Chromium: %+v", got)
	}
	if got.Levels != variants || got.AudioTracks != 1 || got.Width == 0 {
		t.Errorf("hls.js saw %d variants (want %d), %d audio tracks (want 1), a picture %d wide", got.Levels, variants, got.AudioTracks, got.Width)
	}
	// hls.js steps over the few milliseconds before the first frame that
	// the encoder's delay leaves (a ladder encoded in one run shows it
	// too): a non-fatal notice, logged. Any other error fails.
	var errs []string
	for _, e := range got.Errors {
		if e == "mediaError:bufferSeekOverHole" {
			t.Logf("hls.js: %s (not fatal)", e)
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		t.Errorf("hls.js errors: %s", strings.Join(errs, "; "))
	}
	t.Logf("hls.js in Chromium played %.2f s (%s) of %d variants", got.Time, got.State, got.Levels)
}
