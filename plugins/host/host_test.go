package host

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// Binaries built once for the package's tests: ittybit (serving the
// built-in plugins), the example external plugin, and a crashing one.
var (
	clips                              *encoderstest.Clips
	ittybitBin, x264fast, crashy, liar string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ittybit-host-test-")
	if err != nil {
		panic(err)
	}
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"../../cmd/ittybit", "../examples/x264fast", "./testdata/crashy", "./testdata/liar")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	ittybitBin, x264fast, crashy = filepath.Join(dir, "ittybit"), filepath.Join(dir, "x264fast"), filepath.Join(dir, "crashy")
	liar = filepath.Join(dir, "liar")
	// The plugins get this TMPDIR (instance.go passes it on): the Unix
	// sockets of those the tests kill stay in dir, removed below, not in
	// /tmp.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		panic(err)
	}
	os.Setenv("TMPDIR", tmp)
	clips = encoderstest.NewClips()
	code := m.Run()
	clips.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// noGPU is a filesystem root without device nodes: detection on this
// machine finds the same whatever its /dev holds.
func noGPU(t *testing.T) []string { return []string{"--root", t.TempDir()} }

// mustOpen opens a host with cfg's plugins, closing it when the test ends.
func mustOpen(t *testing.T, cfg Config) *Host {
	t.Helper()
	cfg.Self = ittybitBin
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	h, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// request asks for kind with options from the small clip.
func request(t *testing.T, kind encoders.Kind, options string) encoders.Request {
	t.Helper()
	in := clips.Path(t, encoderstest.SmallHD)
	var o encoders.Options
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		t.Fatal(err)
	}
	info, err := (&probe.Prober{}).Probe(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	f := encoders.Defaults(kind, o, "").Format
	return encoders.Request{
		Spec:   encoders.Spec{Kind: kind, Input: in, Options: o},
		Source: info, Input: in, Output: filepath.Join(t.TempDir(), "out"+encoders.Extension(f)),
	}
}

// encode runs req and returns the result and the progress reports.
func encode(t *testing.T, h *Host, req encoders.Request) (encoders.Result, []encoders.Progress, error) {
	t.Helper()
	var mu sync.Mutex
	var reports []encoders.Progress
	res, err := h.Encode(t.Context(), req, func(p encoders.Progress) {
		mu.Lock()
		reports = append(reports, p)
		mu.Unlock()
	})
	return res, reports, err
}

func pids(h *Host) []int {
	var out []int
	for _, in := range h.plugins {
		in.mu.Lock()
		if in.client != nil {
			if pid, err := strconv.Atoi(in.client.ID()); err == nil {
				out = append(out, pid)
			}
		}
		in.mu.Unlock()
	}
	return out
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestBuiltinPlugins: the four built-in plugins run as their own
// processes, report what this (GPU-less) machine can do, encode with
// streamed progress, and die on Close.
func TestBuiltinPlugins(t *testing.T) {
	h := mustOpen(t, Config{Builtins: []string{"software", "nvenc", "qsv", "vaapi"}, BuiltinArgs: noGPU(t)})
	caps := h.Capabilities()
	if len(caps) != 16 {
		t.Fatalf("%d rows, want 4 plugins × 4 codecs:\n%+v", len(caps), caps)
	}
	for _, c := range caps {
		if c.Available != (c.Plugin == "software") || c.Backend != encoders.Backend(c.Plugin) {
			t.Errorf("row %+v", c)
		}
	}
	procs := pids(h)
	if len(procs) != 4 {
		t.Fatalf("plugin processes %v", procs)
	}
	for _, pid := range procs {
		if pid == os.Getpid() || !alive(pid) {
			t.Errorf("plugin %d is not a live process of its own", pid)
		}
	}

	res, reports, err := encode(t, h, request(t, encoders.KindVideo, `{"end":2,"width":320}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Plugin != "software" || res.Encoder != "libx264" || res.Fallback != nil || res.Plan.Video.Width != 320 {
		t.Errorf("result %+v", res)
	}
	if len(reports) == 0 || reports[len(reports)-1].Fraction != 1 {
		t.Errorf("progress %+v", reports)
	}
	if v := encoderstest.Probe(t, res.File.URL).Video(); v == nil || v.CodecName != "h264" || v.Width != 320 {
		t.Errorf("output %+v", v)
	}
	res, _, err = encode(t, h, request(t, encoders.KindAudio, `{"end":1}`))
	if err != nil || res.Plugin != "software" || res.Encoder != "libmp3lame" {
		t.Errorf("audio: %+v, %v", res, err)
	}

	h.Close()
	for _, pid := range procs {
		if alive(pid) {
			t.Errorf("plugin %d outlived Close", pid)
		}
	}
	if _, _, err := encode(t, h, request(t, encoders.KindVideo, `{"end":1}`)); ittybit.KindOf(err) != ittybit.ErrCancelled {
		t.Errorf("encode after Close: %v, want cancelled", err)
	}
}

// TestHardwareFailureFallsBackToSoftware: on a fake GeForce the NVENC
// plugin is chosen first; its encode fails, and the step is retried once
// in software, recording why.
func TestHardwareFailureFallsBackToSoftware(t *testing.T) {
	fake := encoderstest.NewFakeHardware(t, encoderstest.HostNVIDIA535)
	fake.Install(t)
	logs := &lockedBuffer{}
	h := mustOpen(t, Config{Builtins: []string{"software", "nvenc"}, BuiltinArgs: []string{"--root", fake.Root}, Env: fake.Env,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	want := encoders.Capability{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: "h264", Available: true,
		Device: "GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)", MaxSessions: 5}
	if diff := cmp.Diff(want, h.Capabilities()[4]); diff != "" {
		t.Fatalf("nvenc h264 row (-want +got):\n%s", diff)
	}

	var commands [][]string
	req := request(t, encoders.KindVideo, `{"end":1}`)
	req.Trace = func(argv []string) { commands = append(commands, argv) }
	req.LogArgs = []any{"task_id", "task_1", "step_id", "step_1", "node_id", "n1"}
	var attempts []string
	open := 0
	req.Started = func(a encoders.Attempt) func() {
		attempts = append(attempts, fmt.Sprintf("%s %s %d retry=%v", a.Plugin, a.Plan.Encoder, a.Sessions, a.Retry))
		open++
		return func() { open-- }
	}
	res, reports, err := encode(t, h, req)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nvenc h264_nvenc 1 retry=false", "software libx264 1 retry=true"}; !slices.Equal(attempts, want) || open != 0 {
		t.Errorf("attempts %q (%d not ended), want %q", attempts, open, want)
	}
	// The fallback's log line says which task it is about.
	if line := logs.line("encode failed; retrying in software"); !strings.Contains(line, `"task_id":"task_1","step_id":"step_1","node_id":"n1"`) {
		t.Errorf("fallback log line %q lacks the task's ids", line)
	}
	if res.Plugin != "software" || res.Encoder != "libx264" || res.Plan.Backend != encoders.BackendSoftware {
		t.Errorf("result %+v", res)
	}
	if res.Fallback == nil || res.Fallback.From != "h264_nvenc" || !strings.Contains(res.Fallback.Reason, "OpenEncodeSessionEx failed: out of memory (10)") {
		t.Errorf("fallback %+v", res.Fallback)
	}
	if len(reports) == 0 || len(commands) < 2 || !strings.Contains(strings.Join(commands[0], " "), "h264_nvenc") {
		t.Errorf("progress %d reports, commands %v", len(reports), commands)
	}

	// With every NVENC session taken, NVENC is skipped, not failed.
	release, ok := h.sessions.acquire("nvenc\x00"+want.Device, 5, 5)
	if !ok {
		t.Fatal("could not take the sessions")
	}
	defer release()
	res, _, err = encode(t, h, request(t, encoders.KindVideo, `{"end":1}`))
	if err != nil || res.Plugin != "software" || res.Fallback != nil {
		t.Errorf("with no free session: %+v, %v", res, err)
	}
}

// TestExternalPluginClaimsItsCodec: a plugin in the plugin directory is
// started like a built-in one and takes the codec it claims; the rest
// stays with the built-in plugins.
func TestExternalPluginClaimsItsCodec(t *testing.T) {
	dir := t.TempDir()
	if err := os.Link(x264fast, filepath.Join(dir, "x264fast")); err != nil {
		t.Fatal(err)
	}
	// Not plugins: a hidden file and a data file.
	os.WriteFile(filepath.Join(dir, ".x264fast.sha256"), nil, 0o755)
	os.WriteFile(filepath.Join(dir, "README"), []byte("plugins"), 0o644)
	h := mustOpen(t, Config{Builtins: []string{"software"}, BuiltinArgs: noGPU(t), PluginDir: dir})
	caps := h.Capabilities()
	if got := caps[len(caps)-1]; got != (encoders.Capability{Plugin: "x264fast", Backend: encoders.BackendSoftware, Codec: "h264", Available: true}) {
		t.Errorf("last row %+v", got)
	}
	var commands []string
	req := request(t, encoders.KindVideo, `{"end":1}`)
	req.Trace = func(argv []string) { commands = append(commands, strings.Join(argv, " ")) }
	res, _, err := encode(t, h, req)
	if err != nil || res.Plugin != "x264fast" || res.Encoder != "libx264" {
		t.Fatalf("h264: %+v, %v", res, err)
	}
	if len(commands) == 0 || !strings.Contains(commands[0], "-preset ultrafast") {
		t.Errorf("commands %v", commands)
	}
	for _, tc := range []struct {
		kind    encoders.Kind
		options string
		encoder string
	}{
		{encoders.KindVideo, `{"end":1,"codec":"vp9"}`, "libvpx-vp9"},
		{encoders.KindImage, `{"width":64}`, "mjpeg"},
	} {
		res, _, err := encode(t, h, request(t, tc.kind, tc.options))
		if err != nil || res.Plugin != "software" || res.Encoder != tc.encoder {
			t.Errorf("%s %s: %+v, %v", tc.kind, tc.options, res, err)
		}
	}
}

// TestPluginCrashMidEncode: a plugin that dies during an encode (ffmpeg
// running) does not lose the step: it is retried in the built-in software
// plugin; the crashed plugin is started again for the next encode.
func TestPluginCrashMidEncode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Link(crashy, filepath.Join(dir, "crashy")); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "crashed")
	h := mustOpen(t, Config{Builtins: []string{"software"}, BuiltinArgs: noGPU(t), PluginDir: dir, Env: []string{"ITTYBIT_CRASHY_ONCE=" + marker}})
	first := pids(h)

	res, _, err := encode(t, h, request(t, encoders.KindVideo, `{"end":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("crashy did not crash")
	}
	if res.Plugin != "software" || res.Fallback == nil || res.Fallback.From != "libx264" || !strings.Contains(res.Fallback.Reason, "plugin crashy stopped during the encode") {
		t.Errorf("result %+v, fallback %+v", res, res.Fallback)
	}
	if v := encoderstest.Probe(t, res.File.URL).Video(); v == nil || v.CodecName != "h264" {
		t.Errorf("output %+v", v)
	}

	res, _, err = encode(t, h, request(t, encoders.KindVideo, `{"end":1}`))
	if err != nil || res.Plugin != "crashy" || res.Fallback != nil {
		t.Errorf("after the crash: %+v, %v", res, err)
	}
	if now := pids(h); now[1] == first[1] {
		t.Errorf("crashy was not started again: pid %d", now[1])
	}
}

// TestPluginThatLies: a plugin that reports success without writing the
// result (nothing, an empty file, a file of another size) never passes
// for an encode: the attempt fails with encode_failed, saying so, and the
// encode is done again by the built-in software plugin.
func TestPluginThatLies(t *testing.T) {
	for _, mode := range []string{"nothing", "empty", "short"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Link(liar, filepath.Join(dir, "liar")); err != nil {
				t.Fatal(err)
			}
			h := mustOpen(t, Config{Builtins: []string{"software"}, BuiltinArgs: noGPU(t), PluginDir: dir, Env: []string{"ITTYBIT_LIAR=" + mode}})
			res, _, err := encode(t, h, request(t, encoders.KindVideo, `{"end":1}`))
			if err != nil {
				t.Fatal(err)
			}
			if res.Plugin != "software" || res.Fallback == nil || !strings.Contains(res.Fallback.Reason, "plugin liar reported a result it did not write") {
				t.Fatalf("result %+v, fallback %+v; want the lie refused and the encode done in software", res, res.Fallback)
			}
			st, err := os.Stat(res.File.URL)
			if err != nil || st.Size() != res.File.Filesize {
				t.Errorf("the result says %d bytes; on disk: %v, %v", res.File.Filesize, st, err)
			}
			if v := encoderstest.Probe(t, res.File.URL).Video(); v == nil || v.CodecName != "h264" {
				t.Errorf("output %+v", v)
			}
		})
	}
}

// TestEncodeCancel: cancelling the caller's context stops the encode in the
// plugin, with no fallback.
func TestEncodeCancel(t *testing.T) {
	h := mustOpen(t, Config{Builtins: []string{"software"}, BuiltinArgs: noGPU(t)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := request(t, encoders.KindVideo, `{"codec":"h265"}`)
	res, err := h.Encode(ctx, req, func(encoders.Progress) { cancel() })
	if ittybit.KindOf(err) != ittybit.ErrCancelled || res.Fallback != nil {
		t.Errorf("%+v, %v; want cancelled", res, err)
	}
	// The plugin is fine for the next encode.
	if _, _, err := encode(t, h, request(t, encoders.KindVideo, `{"end":1}`)); err != nil {
		t.Error(err)
	}
}

func TestOpenFailures(t *testing.T) {
	if _, err := Open(t.Context(), Config{Self: ittybitBin, Builtins: []string{"software", "amf"}, BuiltinArgs: noGPU(t)}); err == nil || !strings.Contains(err.Error(), "amf") {
		t.Errorf("unknown built-in: %v", err)
	}
	// An executable that is no plugin is left out.
	dir := t.TempDir()
	tr, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	data, _ := os.ReadFile(tr)
	os.WriteFile(filepath.Join(dir, "true"), data, 0o755)
	h := mustOpen(t, Config{Builtins: []string{"software"}, BuiltinArgs: noGPU(t), PluginDir: dir, Timeout: 10e9})
	if len(h.plugins) != 1 {
		t.Errorf("plugins %d", len(h.plugins))
	}
	if _, err := Open(t.Context(), Config{Self: ittybitBin, PluginDir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing plugin dir: no error")
	}
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// line returns the first line holding msg, or "".
func (b *lockedBuffer) line(msg string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			return l
		}
	}
	return ""
}

// TestEncodeThreads: the host's EncodeThreads reaches a software plan,
// which the plugin runs with it.
func TestEncodeThreads(t *testing.T) {
	h := mustOpen(t, Config{Builtins: []string{"software"}, BuiltinArgs: noGPU(t), EncodeThreads: 1})
	res, _, err := encode(t, h, request(t, encoders.KindVideo, `{"width":160}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Threads != 1 || res.Plugin != "software" {
		t.Errorf("plan threads %d by %s, want 1 by software", res.Plan.Threads, res.Plugin)
	}
}
