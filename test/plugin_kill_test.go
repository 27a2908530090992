package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// cmdline returns a process's command line, arguments separated by spaces.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// TestPluginKilledMidEncode SIGKILLs the software encoder plugin (`ittybit
// plugin serve software`, a child of the agent) of an `ittybit dev` while
// it encodes. The plugin host sees the plugin go, starts it again and runs
// the encode once more; the task completes with a valid result, the encode
// step records the fallback and why, the killed plugin's ffmpeg dies with
// it, and the agent goes on taking tasks.
func TestPluginKilledMidEncode(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skipf("needs /proc to find the plugin process: %v", err)
	}
	dir := t.TempDir()
	for name, clip := range map[string]encoderstest.Clip{"long.mov": encoderstest.Long, "short.mp4": encoderstest.Silent} {
		data, err := os.ReadFile(clips.Path(t, clip))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(files.Close)
	dev := mustDev(t)
	mustReady(t, dev)
	users := client.New(dev.URL(), testAPIKey)

	task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindVideo, Input: files.URL + "/long.mov",
		Options: encoders.Options{Codec: encoders.CodecH265, Quality: encoders.QualityVeryHigh}}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Mid-encode: the software plugin runs the encode's ffmpeg.
	var plugin, ffmpegPID int
	wait.For(t, "an ffmpeg under the software plugin", 2*time.Minute, func() error {
		plugin, ffmpegPID = 0, 0
		for _, p := range descendants(processes(t), dev.cmd.Process.Pid) {
			switch {
			case strings.HasSuffix(cmdline(p.pid), "plugin serve software") || strings.Contains(cmdline(p.pid), "plugin serve software "):
				plugin = p.pid
			case p.comm == "ffmpeg":
				ffmpegPID = p.pid
			}
		}
		if plugin == 0 || ffmpegPID == 0 || processes(t)[ffmpegPID].ppid != plugin {
			return fmt.Errorf("software plugin %d, ffmpeg %d", plugin, ffmpegPID)
		}
		return nil
	})
	if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("killed the software plugin (pid %d) with its ffmpeg (pid %d) at work", plugin, ffmpegPID)

	final := waitTask(t, users, task.ID, 4*time.Minute)
	recovered := time.Since(killedAt)
	if final.Status != api.TaskCompleted || final.Output == nil {
		t.Fatalf("task %s %+v, want completed", final.Status, final.Error)
	}
	enc := final.Steps[2]
	var opts struct {
		Encoder  string
		Fallback *struct{ From, Reason string }
	}
	if err := json.Unmarshal(enc.Options, &opts); err != nil {
		t.Fatal(err)
	}
	if opts.Fallback == nil || !strings.Contains(opts.Fallback.Reason, "stopped") || opts.Encoder != "libx265" {
		t.Errorf("encode step options %s: want encoder libx265 and a fallback saying the plugin stopped", enc.Options)
	}
	out := filepath.Join(t.TempDir(), "out.mp4")
	resp, err := http.Get(*final.Output)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err := os.WriteFile(out, body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := encoderstest.Probe(t, out)
	if v := r.Video(); v == nil || v.CodecName != "hevc" || r.Duration() < 7.5 {
		t.Errorf("result: %+v, %.2f s; want the whole 8 s in hevc", v, r.Duration())
	}
	// The killed plugin's ffmpeg died with it (the parent-death signal),
	// and a new plugin process serves.
	if p, ok := processes(t)[ffmpegPID]; ok && p.state != 'Z' && p.comm == "ffmpeg" {
		t.Errorf("the killed plugin's ffmpeg (pid %d) still runs", ffmpegPID)
	}
	restarted := 0
	for _, p := range descendants(processes(t), dev.cmd.Process.Pid) {
		if strings.Contains(cmdline(p.pid), "plugin serve software") && p.pid != plugin {
			restarted = p.pid
		}
	}
	if restarted == 0 {
		t.Error("no software plugin runs after the kill")
	}
	next, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindImage, Input: files.URL + "/short.mp4"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if task := waitTask(t, users, next.ID, 2*time.Minute); task.Status != api.TaskCompleted {
		t.Errorf("the task after: %s %+v", task.Status, task.Error)
	}

	f := figures{
		heading: "## TestPluginKilledMidEncode: the encoder plugin SIGKILLed mid-encode",
		intro: "`test/plugin_kill_test.go`. One `ittybit dev`; an 8 s 640×360 clip to h265 at very_high quality; once the encode\n" +
			"step's ffmpeg runs, the `ittybit plugin serve software` process running it is SIGKILLed.",
	}
	f.add("killed", "plugin pid %d while its ffmpeg (pid %d) encoded", plugin, ffmpegPID)
	f.add("recovery", "the plugin host started the plugin again (pid %d) and ran the encode again in the same step attempt (%d)", restarted, enc.Attempt)
	f.add("task", "completed %s after the kill; encode step options record fallback from %s: %q", seconds(recovered), opts.Fallback.From, opts.Fallback.Reason)
	f.add("result", "hevc, %.2f s, checked with ffprobe", r.Duration())
	f.add("orphans", "none: the killed plugin's ffmpeg died with it")
	f.add("next task on the same agent", "completed")
	f.write(t)
}
