package test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestSplitAcrossAgents runs a 20 s video through one server that splits
// it into 4 s parts and two agents, and checks the task and its result
// against the same task run whole by the CLI's local mode: the parts ran
// on both agents, the result has the source's frames, ends with the whole
// one (the picture within a frame, the sound within an audio frame),
// decodes without a word from ffmpeg, and is as good (PSNR within 0.5 dB)
// and as large (within 3 %).
func TestSplitAcrossAgents(t *testing.T) {
	t.Parallel()
	src := splitSource(t, "320x240", 20)
	f := splitCluster(t, src)
	users, input := f.users, f.input
	req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: input, Options: encoders.Options{Codec: encoders.CodecH264, Format: "mp4"}}
	created, err := users.Create(context.Background(), req, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	task := waitTask(t, users, created.ID, 4*time.Minute)
	if task.Status != api.TaskCompleted || task.Output == nil {
		t.Fatalf("task %s %+v", task.Status, task.Error)
	}
	enc := task.Steps[2]
	nodes := map[string]int{}
	for _, p := range enc.Parts {
		if p.Status != api.StepCompleted || p.Node == nil || p.Attempt < 1 || p.StartedAt == nil || p.FinishedAt == nil || p.Object != "part" {
			t.Errorf("part %d: %+v", p.Index, p)
			continue
		}
		nodes[*p.Node]++
	}
	if len(enc.Parts) != 6 || enc.Parts[5].Kind != api.PartAudio || len(nodes) != 2 {
		t.Errorf("encode step: %d parts on %v, want 5 video parts and the audio on both agents", len(enc.Parts), nodes)
	}

	got := compareWithWhole(t, task, req, src, 600, 30000.0/1001)
	t.Logf("parts on %v; %s", nodes, got)
}

// compareWithWhole downloads a split task's result and checks it against
// the same request run whole by the CLI's local mode: frames (frames of
// the source), the picture's end within a frame (at fps), the sound's
// within an AAC frame, a silent decode, timestamps increasing, PSNR
// against src within 0.5 dB and size within 3 %. It returns a summary.
func compareWithWhole(t *testing.T, task *api.Task, req api.CreateTaskRequest, src string, frames int, fps float64) string {
	t.Helper()
	split := filepath.Join(t.TempDir(), "split"+encoders.Extension(encoders.Defaults(req.Kind, req.Options, "").Format))
	download(t, *task.Output, split)
	local := runLocal(t, req)
	if local.Status != api.TaskCompleted || local.Output == nil {
		t.Fatalf("local: %s", local.Status)
	}
	whole := strings.TrimPrefix(*local.Output, "file://")

	sf, sv, sa, increasing := encoderstest.Ends(t, split)
	wf, wv, wa, _ := encoderstest.Ends(t, whole)
	if !increasing {
		t.Errorf("the split result's video timestamps repeat")
	}
	if sf != wf || sf != frames {
		t.Errorf("frames: split %d, whole %d, source %d", sf, wf, frames)
	}
	if math.Abs(sv-wv) > 1/fps+1e-6 {
		t.Errorf("the picture ends at %.4f split, %.4f whole", sv, wv)
	}
	if math.Abs(sa-wa) > 1024.0/48000+1e-6 {
		t.Errorf("the sound ends at %.4f split, %.4f whole", sa, wa)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", split, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("ffmpeg -v error on the split result: %v %s", err, out)
	}
	ps, pw := encoderstest.PSNR(t, split, src), encoderstest.PSNR(t, whole, src)
	if ps < pw-0.5 {
		t.Errorf("PSNR against the source: split %.2f dB, whole %.2f dB", ps, pw)
	}
	ss, ws := fileSize(t, split), fileSize(t, whole)
	if r := float64(ss) / float64(ws); r < 0.97 || r > 1.03 {
		t.Errorf("size: split %d, whole %d (%.3f×)", ss, ws, r)
	}
	return fmt.Sprintf("frames %d; picture ends %.4f/%.4f; sound %.4f/%.4f; PSNR %.2f/%.2f dB; size %.3f×",
		sf, sv, wv, sa, wa, ps, pw, float64(ss)/float64(ws))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestSplitAgentKilledMidPart kills the agent running a part: that part
// (and no part already done) runs again on the other agent, and the task
// completes with the source's every frame.
func TestSplitAgentKilledMidPart(t *testing.T) {
	t.Parallel()
	f, created := slowSplitTask(t)
	users, agents := f.users, f.agents
	victim, killed, done := catchPart(t, users, created.ID)
	agents[victim].Kill(t)
	task := waitTask(t, users, created.ID, 4*time.Minute)
	if task.Status != api.TaskCompleted || task.Output == nil {
		t.Fatalf("task %s %+v", task.Status, task.Error)
	}
	for _, p := range task.Steps[2].Parts {
		switch {
		case slices.Contains(killed, p.Index):
			if p.Attempt < 2 || p.Node == nil || *p.Node == victim {
				t.Errorf("part %d, killed on %s: attempt %d on %v, want a second attempt elsewhere", p.Index, victim, p.Attempt, p.Node)
			}
		case done[p.Index] > 0:
			if p.Attempt != done[p.Index] {
				t.Errorf("part %d, done before the kill, ran again (attempt %d)", p.Index, p.Attempt)
			}
		}
	}
	out := filepath.Join(t.TempDir(), "split.mp4")
	download(t, *task.Output, out)
	if frames, _, _, increasing := encoderstest.Ends(t, out); frames != 720 || !increasing {
		t.Errorf("the result has %d frames (want 720), increasing %v", frames, increasing)
	}
	t.Logf("killed %s with parts %v running and %d done; the task completed", victim, killed, len(done))
}

// catchPart waits for a video part of the task to run with progress on
// an agent, and returns that agent, the parts it runs, and the attempts
// of the parts already done, by index.
func catchPart(t *testing.T, users *client.Client, id string) (node string, running []int, done map[int]int) {
	t.Helper()
	wait.For(t, "a part running on an agent", 2*time.Minute, func() error {
		cur, err := users.Get(context.Background(), id)
		if err != nil {
			return err
		}
		node, running, done = "", nil, map[int]int{}
		for _, p := range cur.Steps[2].Parts {
			if p.Status == api.StepProcessing && p.Node != nil && p.Kind == api.PartVideo && p.Progress != nil && *p.Progress > 0 {
				node = *p.Node
			}
		}
		if node == "" {
			return fmt.Errorf("no video part running yet (encode step %s)", cur.Steps[2].Status)
		}
		for _, p := range cur.Steps[2].Parts {
			switch {
			case p.Status == api.StepProcessing && p.Node != nil && *p.Node == node:
				running = append(running, p.Index)
			case p.Status == api.StepCompleted:
				done[p.Index] = p.Attempt
			}
		}
		return nil
	})
	return node, running, done
}

// TestSplitAgentStopped stops (SIGSTOP) an agent while it encodes a part,
// in a cluster that would not call it down for two minutes: its parts get
// backup copies on the other agent, which win, and the task completes
// with a whole result while the stopped agent still holds its copies.
func TestSplitAgentStopped(t *testing.T) {
	t.Parallel()
	f, created := slowSplitTask(t, "--min-heartbeat-ttl", "2m")
	victim, stopped, _ := catchPart(t, f.users, created.ID)
	pid := f.agents[victim].cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	start := time.Now()
	task := waitTask(t, f.users, created.ID, 4*time.Minute)
	if task.Status != api.TaskCompleted || task.Output == nil {
		t.Fatalf("task %s %+v", task.Status, task.Error)
	}
	took := time.Since(start)
	for _, p := range task.Steps[2].Parts {
		if slices.Contains(stopped, p.Index) && (p.Node == nil || *p.Node == victim || p.Attempt < 2) {
			t.Errorf("part %d, stopped on %s: completed by attempt %d on %v, want a backup elsewhere", p.Index, victim, p.Attempt, p.Node)
		}
	}
	m := scrape(t, f.server.URL()+"/metrics")
	if won := m.samples["ittybit_part_backups_won_total"]; won < float64(len(stopped)) {
		t.Errorf("backups won: %v, want at least %d (the parts stopped)", won, len(stopped))
	}
	out := filepath.Join(t.TempDir(), "split.mp4")
	download(t, *task.Output, out)
	if frames, _, _, increasing := encoderstest.Ends(t, out); frames != 720 || !increasing {
		t.Errorf("the result has %d frames (want 720), increasing %v", frames, increasing)
	}
	t.Logf("stopped %s with parts %v; the task completed %.1f s later, the agent still stopped (backups started %v, won %v)",
		victim, stopped, took.Seconds(), m.samples["ittybit_part_backups_started_total"], m.samples["ittybit_part_backups_won_total"])
}

// TestSplitCorruptPart runs a split task on agents whose H.264 encoder
// is a plugin that zeroes the second half of part 1 the first time it
// encodes it and says nothing: the agent's check of the part as it lands catches it, the
// part runs again, and the result is whole.
func TestSplitCorruptPart(t *testing.T) {
	t.Parallel()
	plugins := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "corruptpart"), "./test/plugins/corruptpart")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	f := splitClusterWith(t, splitSource(t, "320x240", 20), []string{"x", "y"}, nil, []string{"--plugin-dir", plugins})
	created, err := f.users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindVideo, Input: f.input}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	task := waitTask(t, f.users, created.ID, 4*time.Minute)
	if task.Status != api.TaskCompleted || task.Output == nil {
		t.Fatalf("task %s %+v", task.Status, task.Error)
	}
	if _, err := os.Stat(filepath.Join(plugins, "corruptpart.cut-1")); err != nil {
		t.Fatalf("the plugin never cut part 1: %v", err)
	}
	if p := task.Steps[2].Parts[1]; p.Attempt < 2 {
		t.Errorf("part 1, corrupted: completed by attempt %d, want a second", p.Attempt)
	}
	if n := scrape(t, f.server.URL()+"/metrics").samples["ittybit_part_retries_total"]; n < 1 {
		t.Errorf("part retries %v, want at least 1", n)
	}
	out := filepath.Join(t.TempDir(), "split.mp4")
	download(t, *task.Output, out)
	if frames, _, _, increasing := encoderstest.Ends(t, out); frames != 600 || !increasing {
		t.Errorf("the result has %d frames (want 600), increasing %v", frames, increasing)
	}
}

// splitFleet is a cluster that splits: the task API, its server, its
// agents by name, and the URL of the source it serves.
type splitFleet struct {
	users   *client.Client
	server  *proc
	agents  map[string]*proc
	input   string
	storage string // the managed storage folder
}

// splitCluster starts one server that splits videos of 10 s or more into
// 4 s parts and two agents (x, y; two slots, one encode thread each) on
// folder storage, and serves src. Extra server flags come last.
func splitCluster(t *testing.T, src string, extra ...string) *splitFleet {
	t.Helper()
	return splitClusterWith(t, src, []string{"x", "y"}, extra, nil)
}

// splitClusterWith is splitCluster with the agents named, and extra flags
// for the server and for each agent.
func splitClusterWith(t *testing.T, src string, names, serverFlags, agentFlags []string) *splitFleet {
	t.Helper()
	files := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(src))))
	t.Cleanup(files.Close)
	storageDir := filepath.Join(t.TempDir(), "files")
	srv := mustServer(t, "s", append([]string{"--bootstrap", "--allow-private-inputs", "--storage", storageDir,
		"--split-seconds", "4", "--split-min-seconds", "10"}, append(schedFlags, serverFlags...)...)...)
	mustReady(t, srv)
	env := append(os.Environ(), "ITTYBIT_NODE_TOKEN="+testNodeToken)
	agents := map[string]*proc{}
	for _, name := range names {
		p := &proc{name: name, dir: t.TempDir(), env: env}
		p.args = []string{"agent", "--name", name, "--work-dir", filepath.Join(p.dir, "work"), "--storage", storageDir,
			"--server", srv.URL(), "--allow-private-inputs", "--slots", "2", "--encode-threads", "1"}
		p.args = append(p.args, agentFlags...)
		p.mustStart(t)
		agents[name] = p
	}
	waitReadyAgents(t, client.New(srv.URL(), testNodeToken), len(names))
	return &splitFleet{users: client.New(srv.URL(), testAPIKey), server: srv, agents: agents, input: files.URL + "/" + filepath.Base(src), storage: storageDir}
}

// splitSource writes a test source with a tone: seconds long at 29.97
// fps, of the given size.
func splitSource(t *testing.T, size string, seconds int) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "clip.mp4")
	d := strconv.Itoa(seconds)
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30000/1001:duration="+d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+d+".2",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-c:a", "aac", src).CombinedOutput(); err != nil {
		t.Fatalf("make the source: %v\n%s", err, out)
	}
	return src
}

// TestSplitCancel cancels a split task while its parts encode on both
// agents: no ffmpeg is left under either agent soon after (the agents
// hear of it at their next heartbeat, a second apart while they work),
// and the parts already kept in managed storage are removed.
func TestSplitCancel(t *testing.T) {
	t.Parallel()
	f, created := slowSplitTask(t)
	users, agents := f.users, f.agents
	ffmpegs := func() map[string]int {
		all := processes(t)
		n := map[string]int{}
		for name, a := range agents {
			for _, p := range descendants(all, a.cmd.Process.Pid) {
				if p.comm == "ffmpeg" {
					n[name]++
				}
			}
		}
		return n
	}
	kept := filepath.Join(f.storage, "tasks", created.ID, "parts")
	wait.For(t, "a part kept, and ffmpeg encoding parts under both agents", 2*time.Minute, func() error {
		if entries, _ := os.ReadDir(kept); len(entries) == 0 {
			return fmt.Errorf("no part kept in managed storage yet")
		}
		if n := ffmpegs(); n["x"] == 0 || n["y"] == 0 {
			return fmt.Errorf("ffmpeg processes per agent: %v", n)
		}
		return nil
	})
	start := time.Now()
	if _, err := users.Cancel(context.Background(), created.ID); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "no ffmpeg left under the agents", 30*time.Second, func() error {
		if n := ffmpegs(); n["x"]+n["y"] > 0 {
			return fmt.Errorf("ffmpeg processes per agent: %v", n)
		}
		return nil
	})
	gone := time.Since(start)
	task, err := users.Get(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range task.Steps[2].Parts {
		if p.Status != api.StepCompleted && p.Status != api.StepCancelled {
			t.Errorf("part %d is %s after the cancel", p.Index, p.Status)
		}
	}
	// The parts kept so far go too, once the agents have stopped.
	wait.For(t, "the kept parts removed", 30*time.Second, func() error {
		if _, err := os.Stat(kept); !os.IsNotExist(err) {
			return fmt.Errorf("%s is still there (%v)", kept, err)
		}
		return nil
	})
	t.Logf("every part's ffmpeg gone %.2f s after the cancel; the kept parts %.1f s after", gone.Seconds(), time.Since(start).Seconds())
}

// slowSplitTask starts a split cluster (with the extra server flags) and
// creates a task slow enough to catch its parts running: 24 s to AV1 at
// high quality, one thread a part.
func slowSplitTask(t *testing.T, extra ...string) (*splitFleet, *api.Task) {
	t.Helper()
	f := splitCluster(t, splitSource(t, "480x270", 24), extra...)
	req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: f.input,
		Options: encoders.Options{Codec: encoders.CodecAV1, Quality: encoders.QualityHigh}}
	created, err := f.users.Create(context.Background(), req, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f, created
}

// TestSplitTruncatedSource: a source cut short on its way, whose header
// still says it lasts 24 s, fails its probe with invalid_media in a
// cluster that splits, rather than making a short result called complete.
func TestSplitTruncatedSource(t *testing.T) {
	t.Parallel()
	whole := splitSource(t, "320x240", 24)
	faststart := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", whole, "-c", "copy", "-movflags", "+faststart", faststart).CombinedOutput(); err != nil {
		t.Fatalf("faststart: %v\n%s", err, out)
	}
	data, err := os.ReadFile(faststart)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(faststart, data[:len(data)*2/5], 0o644); err != nil {
		t.Fatal(err)
	}
	f := splitCluster(t, faststart)
	users := f.users
	created, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindVideo, Input: f.input}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	task := waitTask(t, users, created.ID, 2*time.Minute)
	if task.Status != api.TaskFailed || task.Error == nil || task.Error.Kind != ittybit.ErrInvalidMedia || task.Steps[0].Status != api.StepFailed {
		t.Fatalf("task %s, error %+v, probe %s: want the probe failed with invalid_media", task.Status, task.Error, task.Steps[0].Status)
	}
	t.Logf("refused: %s", task.Error.Message)
}

// TestHLSFanOutAcrossAgents runs an adaptive task on three agents: its
// renditions, each cut in time into runs of whole segments, and its sound
// are parts of their own, run on several agents at once, and the ladder
// they make has one init segment per rendition, every frame once with
// timestamps increasing, every segment of every rendition starting on a
// key frame, at the same times in all of them, and plays in Chromium
// through hls.js.
func TestHLSFanOutAcrossAgents(t *testing.T) {
	t.Parallel()
	f := splitClusterWith(t, splitSource(t, "640x360", 20), []string{"x", "y", "z"}, nil, nil)
	created, err := f.users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindAdaptive, Input: f.input,
		Options: encoders.Options{Quality: encoders.QualityLow}}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	task := waitTask(t, f.users, created.ID, 4*time.Minute)
	if task.Status != api.TaskCompleted || task.Output == nil {
		t.Fatalf("task %s %+v", task.Status, task.Error)
	}
	enc := task.Steps[2]
	// 20 s in segments of 6 s: runs of one segment (parts of 4 s asked),
	// the last with the rest; two renditions, then the sound.
	runs := (len(enc.Parts) - 1) / 2
	if runs < 3 || len(enc.Parts) != 2*runs+1 || enc.Parts[2*runs].Kind != api.PartAudio {
		t.Fatalf("encode step parts %+v, want runs of each of two renditions and the sound", enc.Parts)
	}
	var frames int64
	for i, p := range enc.Parts[:2*runs] {
		if p.Kind != api.PartRendition || p.Rendition == nil || *p.Rendition != i/runs || p.Frames == 0 ||
			p.FirstFrame != enc.Parts[i%runs].FirstFrame {
			t.Fatalf("part %d: %+v, want run %d of rendition %d", i, p, i%runs, i/runs)
		}
		if i < runs {
			frames += p.Frames
		}
	}
	// At least two parts on different agents ran at the same time.
	together := false
	for _, a := range enc.Parts {
		for _, b := range enc.Parts {
			if *a.Node != *b.Node && *a.StartedAt < *b.FinishedAt && *b.StartedAt < *a.FinishedAt {
				together = true
			}
		}
	}
	if !together {
		t.Errorf("no two parts ran on different agents at once: %+v", enc.Parts)
	}
	dir := filepath.Join(f.storage, "tasks", task.ID)
	master, err := os.ReadFile(filepath.Join(dir, "master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	var starts [][]float64
	lines := strings.Split(string(master), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "#EXT-X-STREAM-INF:") || i+1 >= len(lines) {
			continue
		}
		playlist := filepath.Join(dir, lines[i+1])
		data, err := os.ReadFile(playlist)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := ffmpeg.ParseMediaPlaylist(data)
		if err != nil {
			t.Fatal(err)
		}
		keys := encoderstest.Keyframes(t, playlist)
		if n, _, _, increasing := encoderstest.Ends(t, playlist); int64(n) != frames || !increasing {
			t.Errorf("%s: %d frames (want %d), timestamps increasing %v", lines[i+1], n, frames, increasing)
		}
		if inits, _ := filepath.Glob(filepath.Join(filepath.Dir(playlist), "init*.mp4")); len(inits) != 1 {
			t.Errorf("%s: init segments %v, want one", lines[i+1], inits)
		}
		var at []float64
		next := keys[0]
		for _, seg := range pl.Segments {
			if !slices.ContainsFunc(keys, func(k float64) bool { return math.Abs(k-next) < 0.002 }) {
				t.Errorf("%s: segment %s starts at %.3f, not on a key frame", lines[i+1], seg.URI, next)
			}
			at = append(at, next)
			next += seg.Duration
		}
		starts = append(starts, at)
	}
	if len(starts) != 2 {
		t.Fatalf("%d variants in the master, want 2:\n%s", len(starts), master)
	}
	if !slices.EqualFunc(starts[0], starts[1], func(a, b float64) bool { return math.Abs(a-b) < 0.002 }) {
		t.Errorf("segments start at %v in one rendition, %v in the other", starts[0], starts[1])
	}
	nodes := map[string]bool{}
	for _, p := range enc.Parts {
		nodes[*p.Node] = true
	}
	t.Logf("parts on %d agents; %d segments a rendition, aligned", len(nodes), len(starts[0]))
	checkPlays(t, dir, 2, 3)
}

// TestSplitSourceMatrix splits sources of every kind the field sends, in
// each codec and container, on one cluster, and checks each result
// against the same task run whole: h265 in mov, VP9 in webm and AV1 in
// mp4 from 29.97 fps with sound longer than the picture; a 25 fps MKV
// whose timestamps start at 10 s; a phone-style clip stored rotated. A
// source whose frame rate varies is encoded whole, and as correctly.
func TestSplitSourceMatrix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gen := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		base := []string{"-hide_banner", "-loglevel", "error", "-y"}
		if b, err := exec.Command("ffmpeg", append(append(base, args...), out)...).CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", name, err, b)
		}
		return out
	}
	tone := []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20.2"}
	picture := func(rate string) []string {
		return []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=" + rate + ":duration=20"}
	}
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-c:a", "aac"}
	ntsc := gen("ntsc.mp4", append(append(picture("30000/1001"), tone...), x264...)...)
	late := gen("late.mkv", append(append(append(picture("25"), tone...), x264...), "-output_ts_offset", "10")...)
	rotated := gen("phone.mp4", append(append(append(picture("30000/1001"), tone...), x264...), "-metadata:s:v:0", "rotate=90")...)
	vfr := gen("vfr.mp4", append(append(append(picture("30"), tone...), x264...), "-vf", "select='lt(t\\,10)+not(mod(n\\,2))'", "-fps_mode", "vfr")...)

	f := splitClusterWith(t, ntsc, []string{"x", "y"}, nil, nil)
	base := strings.TrimSuffix(f.input, "ntsc.mp4")
	cases := []struct {
		name, source string
		opts         encoders.Options
		frames       int
		fps          float64
		split        bool
	}{
		{"h265 mov", ntsc, encoders.Options{Codec: encoders.CodecH265, Format: "mov"}, 600, 30000.0 / 1001, true},
		{"vp9 webm", ntsc, encoders.Options{Codec: encoders.CodecVP9, Format: "webm"}, 600, 30000.0 / 1001, true},
		{"av1 mp4", ntsc, encoders.Options{Codec: encoders.CodecAV1, Format: "mp4"}, 600, 30000.0 / 1001, true},
		{"25 fps mkv from 10 s", late, encoders.Options{}, 500, 25, true},
		{"rotated phone clip", rotated, encoders.Options{}, 600, 30000.0 / 1001, true},
		{"variable frame rate", vfr, encoders.Options{}, 450, 30, false},
	}
	// One task at a time: a task is split only when free slots wait for
	// its parts.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: base + filepath.Base(tc.source), Options: tc.opts}
			created, err := f.users.Create(context.Background(), req, client.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			task := waitTask(t, f.users, created.ID, 6*time.Minute)
			if task.Status != api.TaskCompleted || task.Output == nil {
				t.Fatalf("task %s %+v", task.Status, task.Error)
			}
			if split := task.Steps[2].Parts != nil; split != tc.split {
				t.Errorf("split %v (%d parts), want %v", split, len(task.Steps[2].Parts), tc.split)
			}
			t.Log(compareWithWhole(t, task, req, tc.source, tc.frames, tc.fps))
		})
	}
}
