package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
)

var clips *encoderstest.Clips

func TestMain(m *testing.M) {
	// The CLI starts its built-in plugins as "<this binary> plugin serve
	// NAME"; under test this binary is the test binary, which then serves
	// them instead of running the tests.
	if len(os.Args) > 2 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)))
	}
	// The plugins the tests start get this TMPDIR: the Unix sockets of
	// those a cancelled command kills stay in it, removed below, not in
	// /tmp.
	tmp, err := os.MkdirTemp("", "ittybit-cli-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("TMPDIR", tmp)
	clips = encoderstest.NewClips()
	code := m.Run()
	clips.Close()
	if pluginDir.path != "" {
		os.RemoveAll(pluginDir.path)
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// cli runs the command line in-process in a fresh working folder holding
// clip.mov, and returns stdout, stderr and the exit status.
func cli(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), exitCode(err)
}

// workdir makes a folder with a copy of a 6 s 480×270 clip named clip.mov
// and makes it the working folder.
func workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(clips.Path(t, encoderstest.SmallHD))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clip.mov"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return dir
}

// TestSeedCLIExamples runs the seed's CLI examples in local mode on a
// generated clip, as a new user would, and checks each result.
func TestSeedCLIExamples(t *testing.T) {
	dir := workdir(t)
	type check struct {
		path          string
		codec         string
		width, height int
		duration      float64
	}
	for _, tc := range []struct {
		args []string
		want check
	}{
		{[]string{"video", "-i", "clip.mov", "-o", "out.mp4", "--width", "1280", "--height", "720", "--quality", "high"}, check{"out.mp4", "h264", 1280, 720, 6}},
		{[]string{"audio", "-i", "clip.mov", "--format", "mp3", "--quality", "high"}, check{"clip.mp3", "mp3", 0, 0, 6}},
		{[]string{"image", "-i", "clip.mov", "--start", "5", "--format", "webp", "--width", "640"}, check{"clip.webp", "webp", 640, 360, 0}},
		{[]string{"adaptive", "-i", "clip.mov", "--format", "hls", "--quality", "high"}, check{"clip/master.m3u8", "", 0, 0, 0}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			stdout, stderr, code := cli(t, dir, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
			}
			path := filepath.Join(dir, tc.want.path)
			if !strings.Contains(stdout, path) {
				t.Errorf("stdout does not name the result %s:\n%s", path, stdout)
			}
			if tc.want.codec == "" { // HLS
				master, err := os.ReadFile(path)
				if err != nil || !strings.Contains(string(master), "#EXT-X-STREAM-INF:BANDWIDTH=") {
					t.Fatalf("master playlist %s: %v\n%s", path, err, master)
				}
				if !strings.Contains(stdout, "270p/index.m3u8") {
					t.Errorf("renditions not listed:\n%s", stdout)
				}
				return
			}
			r := encoderstest.Probe(t, path)
			s := r.Video()
			if tc.want.width == 0 {
				s = r.Audio()
			}
			if s == nil || s.CodecName != tc.want.codec || s.Width != tc.want.width || s.Height != tc.want.height {
				t.Errorf("%s: got %+v, want %s %dx%d", path, s, tc.want.codec, tc.want.width, tc.want.height)
			}
			if tc.want.duration > 0 && (r.Duration() < tc.want.duration-0.1 || r.Duration() > tc.want.duration+0.1) {
				t.Errorf("%s: duration %.3f, want %.1f", path, r.Duration(), tc.want.duration)
			}
			// The result line gives size, dimensions and duration.
			if tc.want.width > 0 && !strings.Contains(stdout, "x"+itoa(tc.want.height)) {
				t.Errorf("stdout lacks dimensions:\n%s", stdout)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCLIURLInputAndJSON(t *testing.T) {
	dir := workdir(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	stdout, stderr, code := cli(t, dir, "video", "-i", srv.URL+"/clip.mov?token=abc", "-o", "from-url.webm", "--end", "1", "--width", "160", "--json", "--metadata", "user=42")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var task api.Task
	if err := json.Unmarshal([]byte(stdout), &task); err != nil {
		t.Fatalf("--json output is not a task: %v\n%s", err, stdout)
	}
	if task.Status != api.TaskCompleted || task.Object != "task" || len(task.Steps) != 4 || task.Output == nil {
		t.Fatalf("task %+v", task)
	}
	for i, kind := range []string{"probe", "ingest", "video", "upload"} {
		s := task.Steps[i]
		if s.Kind != kind || s.Status != api.StepCompleted || s.Output == nil || s.StartedAt == nil || s.FinishedAt == nil {
			t.Errorf("step %d: %+v", i, s)
		}
	}
	var plan struct {
		Encoder string `json:"encoder"`
		Video   struct {
			Width int `json:"width"`
		} `json:"video"`
	}
	if err := json.Unmarshal(task.Steps[2].Options, &plan); err != nil || plan.Encoder != "libvpx-vp9" || plan.Video.Width != 160 {
		t.Errorf("encode step options %s", task.Steps[2].Options)
	}
	var meta map[string]string
	if err := json.Unmarshal(task.Metadata, &meta); err != nil || meta["user"] != "42" {
		t.Errorf("metadata %s", task.Metadata)
	}
	v := encoderstest.Probe(t, filepath.Join(dir, "from-url.webm")).Video()
	if v == nil || v.CodecName != "vp9" || v.Width != 160 {
		t.Errorf("output %+v", v)
	}
}

func TestCLIDebugPrintsCommands(t *testing.T) {
	dir := workdir(t)
	_, stderr, code := cli(t, dir, "audio", "-i", "clip.mov", "--format", "opus", "--end", "1", "--debug")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var ffprobe, ffmpeg bool
	for _, line := range strings.Split(stderr, "\n") {
		ffprobe = ffprobe || strings.HasPrefix(line, "+ ffprobe ")
		if strings.HasPrefix(line, "+ ffmpeg ") {
			ffmpeg = true
			if !strings.Contains(line, "-protocol_whitelist file") || !strings.Contains(line, "libopus") {
				t.Errorf("ffmpeg line %q", line)
			}
		}
	}
	if !ffprobe || !ffmpeg {
		t.Errorf("--debug did not print both commands:\n%s", stderr)
	}
}

// TestCLIErrors: every error kind a user can reach from the CLI prints a
// message naming the option and what is accepted, with a non-zero status.
func TestCLIErrors(t *testing.T) {
	dir := workdir(t)
	if err := os.WriteFile(filepath.Join(dir, "notes.mp4"), []byte("not a video"), 0o644); err != nil {
		t.Fatal(err)
	}
	silent := clips.Path(t, encoderstest.Silent)
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"no input", []string{"video"}, 2, []string{"input_required", "-i INPUT"}},
		{"bad scheme", []string{"video", "-i", "ftp://example.com/a.mov"}, 2, []string{"invalid_input", "http://, https://, or s3://"}},
		{"bad format", []string{"video", "-i", "clip.mov", "--format", "mkv"}, 2, []string{"invalid_format", "format \"mkv\"", "mp4, webm, mov"}},
		{"audio format", []string{"audio", "-i", "clip.mov", "--format", "wma"}, 2, []string{"invalid_format", "mp3, aac, ogg, opus, wav, flac"}},
		{"bad codec", []string{"video", "-i", "clip.mov", "--codec", "h266"}, 2, []string{"invalid_codec", "h264, h265, vp9, av1"}},
		{"codec for container", []string{"video", "-i", "clip.mov", "--format", "webm", "--codec", "h264"}, 2, []string{"invalid_codec", "h264 cannot go in webm", "vp9, av1"}},
		{"width", []string{"video", "-i", "clip.mov", "--width", "0"}, 2, []string{"invalid_option", "width 0", "1 to 8192", `"50%"`}},
		{"width text", []string{"image", "-i", "clip.mov", "--width", "big"}, 2, []string{"invalid_option", "width must be", `got "big"`}},
		{"fps", []string{"video", "-i", "clip.mov", "--fps", "120"}, 2, []string{"invalid_option", "fps 120", "1 to 60"}},
		{"quality", []string{"audio", "-i", "clip.mov", "--quality", "best"}, 2, []string{"invalid_option", "quality", "very_low, low, medium, high, very_high"}},
		{"fit", []string{"video", "-i", "clip.mov", "--fit", "squash"}, 2, []string{"invalid_option", "fit", "contain, cover, fill"}},
		{"position", []string{"video", "-i", "clip.mov", "--position", "middle"}, 2, []string{"invalid_option", "position", "center"}},
		{"background", []string{"video", "-i", "clip.mov", "--background", "#000"}, 2, []string{"invalid_option", "background", `fit "contain"`}},
		{"bitrate", []string{"audio", "-i", "clip.mov", "--bitrate", "1000"}, 2, []string{"invalid_option", "bitrate", "32000 to 320000"}},
		{"end before start", []string{"video", "-i", "clip.mov", "--start", "3", "--end", "2"}, 2, []string{"invalid_option", "end (2 s) must be after start (3 s)"}},
		{"option of another kind", []string{"audio", "-i", "clip.mov", "--width", "100"}, 2, []string{"invalid_option", "width is not an option of audio", "format, quality, bitrate, start, end"}},
		{"several at once", []string{"video", "-i", "clip.mov", "--fps", "0", "--quality", "x"}, 2, []string{"fps 0", "quality \"x\""}},
		{"output extension", []string{"video", "-i", "clip.mov", "--format", "mp4", "-o", "out.webm"}, 2, []string{"invalid_output", ".webm", "format"}},
		{"output s3 local", []string{"video", "-i", "clip.mov", "-o", "s3://bucket/out.mp4"}, 2, []string{"invalid_output", "s3://"}},
		{"unknown flag", []string{"video", "-i", "clip.mov", "--colour", "red"}, 2, []string{"unknown flag: --colour"}},
		{"missing file", []string{"video", "-i", "nope.mov"}, 1, []string{"fetch_failed", "nope.mov", "no such file"}},
		{"http 404", []string{"video", "-i", srv.URL + "/gone.mov"}, 1, []string{"fetch_failed", "404"}},
		{"not media", []string{"video", "-i", "notes.mp4"}, 1, []string{"invalid_media"}},
		{"no audio", []string{"audio", "-i", silent}, 1, []string{"unsupported_media", "no audio stream"}},
		{"start past end", []string{"video", "-i", "clip.mov", "--start", "60"}, 1, []string{"unsupported_media", "start 60 s is past the end", "6.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, dir, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.contains {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestDefaultOutputNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if got := defaultOutput("/videos/clip.mov", encoders.KindVideo, "mp4"); got != "clip.mp4" {
		t.Errorf("got %s, want clip.mp4", got)
	}
	os.WriteFile("clip.mp4", nil, 0o644)
	os.WriteFile("clip-1.mp4", nil, 0o644)
	if got := defaultOutput("clip.mp4", encoders.KindVideo, "mp4"); got != "clip-2.mp4" {
		t.Errorf("got %s, want clip-2.mp4", got)
	}
	if got := defaultOutput("https://example.com/media/talk.mp4?sig=x", encoders.KindAdaptive, "hls"); got != filepath.Join("talk", "master.m3u8") {
		t.Errorf("got %s, want talk/master.m3u8", got)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"ffmpeg", "-vf", "scale=640:360,pad=640:640:0:140:color=#000000", "-i", "my clip's.mov", ""})
	want := `ffmpeg -vf 'scale=640:360,pad=640:640:0:140:color=#000000' -i 'my clip'\''s.mov' ''`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestBinary builds bin/ittybit and runs the seed's video example as a
// separate process, as a user at a shell would.
func TestBinary(t *testing.T) {
	dir := workdir(t)
	bin := filepath.Join(t.TempDir(), "ittybit")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = mustGetwdOf(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(context.Background(), bin, "video", "-i", "clip.mov", "-o", "out.mp4", "--width", "1280", "--height", "720", "--quality", "high", "--end", "2")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ittybit video: %v\n%s", err, out)
	}
	if v := encoderstest.Probe(t, filepath.Join(dir, "out.mp4")).Video(); v == nil || v.Width != 1280 || v.Height != 720 {
		t.Errorf("out.mp4: %+v", v)
	}
	cmd = exec.Command(bin, "video", "-i", "clip.mov", "--codec", "vp10")
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "invalid_codec") {
		t.Errorf("bad codec: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "version")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ffmpeg version") {
		t.Errorf("version: %v\n%s", err, out)
	}
}

// mustGetwdOf returns the folder of this package's sources (tests start in
// it, before any t.Chdir).
func mustGetwdOf(t *testing.T) string {
	t.Helper()
	return pkgDir
}

var pkgDir = func() string {
	d, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return d
}()

// pluginDir is a plugin folder with the example plugin x264fast and the
// test plugin crashy (which dies mid-encode), built on first use.
var pluginDir struct {
	once sync.Once
	path string
	err  error
}

func buildPlugins(t *testing.T) string {
	t.Helper()
	pluginDir.once.Do(func() {
		dir, err := os.MkdirTemp("", "ittybit-plugins-")
		if err != nil {
			pluginDir.err = err
			return
		}
		build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../../plugins/examples/x264fast", "../../plugins/host/testdata/crashy")
		build.Dir = pkgDir
		if out, err := build.CombinedOutput(); err != nil {
			pluginDir.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
		pluginDir.path = dir
	})
	if pluginDir.err != nil {
		t.Fatal(pluginDir.err)
	}
	return pluginDir.path
}

// TestEncodersCommand lists what this machine encodes with: the table,
// and the JSON array of the contract, external plugins included.
func TestEncodersCommand(t *testing.T) {
	workdir(t)
	plugins := buildPlugins(t)
	stdout, stderr, code := cli(t, "", "encoders")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 17 || !strings.HasPrefix(lines[0], "PLUGIN") || !strings.Contains(stdout, "REASON") {
		t.Errorf("table:\n%s", stdout)
	}
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "software" || f[2] != "h264" || f[3] != "yes" || f[4] != "unlimited" {
		t.Errorf("first row %q", lines[1])
	}

	stdout, stderr, code = cli(t, "", "encoders", "--json", "--plugin-dir", plugins)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(rows) != 18 {
		t.Errorf("%d rows, want 16 built-in and one per external plugin", len(rows))
	}
	keys := []string{"available", "backend", "codec", "device", "max_sessions", "plugin", "reason"}
	for _, r := range rows {
		var got []string
		for k := range r {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Fatalf("row keys %v, want %v", got, keys)
		}
	}
	last := rows[len(rows)-1]
	if last["plugin"] != "x264fast" || last["backend"] != "software" || last["codec"] != "h264" || last["available"] != true {
		t.Errorf("last row %v", last)
	}
}

// TestCLIFallbackRecorded: an encode whose plugin dies mid-way is retried
// in software; the task completes and its encode step records both the
// encoder used and the fallback.
func TestCLIFallbackRecorded(t *testing.T) {
	dir := workdir(t)
	plugins := buildPlugins(t)
	stdout, stderr, code := cli(t, dir, "video", "-i", "clip.mov", "-o", "out.mp4", "--end", "1", "--plugin-dir", plugins, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var task api.Task
	if err := json.Unmarshal([]byte(stdout), &task); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	var opts struct {
		Encoder  string `json:"encoder"`
		Fallback struct {
			From   string `json:"from"`
			Reason string `json:"reason"`
		} `json:"fallback"`
	}
	if err := json.Unmarshal(task.Steps[2].Options, &opts); err != nil {
		t.Fatal(err)
	}
	if task.Status != api.TaskCompleted || opts.Encoder != "libx264" || opts.Fallback.From != "libx264" || !strings.Contains(opts.Fallback.Reason, "plugin crashy stopped during the encode") {
		t.Errorf("status %s, options %s", task.Status, task.Steps[2].Options)
	}
	if !strings.Contains(stderr, "retrying in software") {
		t.Errorf("stderr does not say the encode was retried:\n%s", stderr)
	}
	if v := encoderstest.Probe(t, filepath.Join(dir, "out.mp4")).Video(); v == nil || v.CodecName != "h264" {
		t.Errorf("out.mp4: %+v", v)
	}
}
