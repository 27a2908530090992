package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
	"github.com/ittybit-oss/ittybit/storage"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

// fleet is a cluster with agents, an S3 server and a file server.
type fleet struct {
	servers []*proc
	agents  []*proc
	s3      *s3test.Server
	files   *httptest.Server
	users   *client.Client
	nodes   *client.Client
}

// schedFlags shorten agent liveness so that a dead agent is noticed in
// seconds, not the production 15.
var schedFlags = []string{"--min-heartbeat-ttl", "1s", "--heartbeat-grace", "1s", "--failover-ttl", "5s"}

// mustFleet starts versitygw, a file server holding clips, three servers
// and two agents, all on loopback, with managed storage in S3.
func mustFleet(t *testing.T, clips map[string]string) *fleet {
	t.Helper()
	return mustFleetWith(t, clips, nil)
}

// mustFleetWith is mustFleet with more flags for the servers.
func mustFleetWith(t *testing.T, clips map[string]string, serverFlags []string) *fleet {
	t.Helper()
	f := &fleet{s3: s3test.Start(t)}
	for _, b := range []string{"managed", "inputs", "outputs"} {
		f.s3.MakeBucket(t, b)
	}
	dir := t.TempDir()
	for name, src := range clips {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.files = httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(f.files.Close)

	env := s3Env(f.s3)
	server := func(name string, extra ...string) *proc {
		p := &proc{name: name, dir: t.TempDir(), env: env}
		p.args = append([]string{"server", "--node-id", name, "--data", p.DataDir(), "--allow-private-inputs",
			"--storage", "s3://managed/ittybit"}, append(append(schedFlags, serverFlags...), extra...)...)
		p.mustStart(t)
		return p
	}
	a := server("a", "--bootstrap")
	mustReady(t, a)
	f.servers = []*proc{a, server("b", "--join", a.URL()), server("c", "--join", a.URL())}
	var urls []string
	for _, s := range f.servers {
		urls = append(urls, "--server", s.URL())
	}
	for _, name := range []string{"x", "y"} {
		p := &proc{name: name, dir: t.TempDir(), env: env}
		// A short drain, so that a SIGTERMed agent hands back an encode
		// under way rather than finishing it.
		p.args = append([]string{"agent", "--name", name, "--work-dir", filepath.Join(p.dir, "work"), "--storage", "s3://managed/ittybit",
			"--allow-private-inputs", "--slots", "2", "--drain-timeout", "1s"}, urls...)
		p.mustStart(t)
		f.agents = append(f.agents, p)
	}
	f.users = client.New(f.servers[1].URL(), testAPIKey)
	f.nodes = client.New(f.servers[2].URL(), testNodeToken)
	waitReadyAgents(t, f.nodes, 2)
	return f
}

// wait polls a task until it ends.
func (f *fleet) wait(t *testing.T, id string, timeout time.Duration) *api.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	task, err := f.users.Wait(ctx, id, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return task
}

// fetch brings a task's output to a local file: a signed managed-storage
// URL over HTTP, or an s3:// object from the S3 server.
func (f *fleet) fetch(t *testing.T, url, dst string) {
	t.Helper()
	if strings.HasPrefix(url, "s3://") {
		cl, err := storage.NewS3(context.Background(), f.s3.Config())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Download(context.Background(), url, dst, 0); err != nil {
			t.Fatalf("download %s: %v", url, err)
		}
		return
	}
	download(t, url, dst)
}

// download GETs url into the file dst.
func download(t *testing.T, url, dst string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
}

// TestPipeline runs the seed's five examples and an s3:// input through 3
// servers and 2 agents, and checks every result with ffprobe.
func TestPipeline(t *testing.T) {
	f := mustFleet(t, map[string]string{"upload.mov": clips.Path(t, encoderstest.SmallHD)})
	in := f.files.URL + "/upload.mov"
	cl, err := storage.NewS3(context.Background(), f.s3.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Upload(context.Background(), clips.Path(t, encoderstest.SmallHD), "s3://inputs/sources/clip.mov"); err != nil {
		t.Fatal(err)
	}
	type check struct {
		codec         string
		width, height int
		duration      float64
	}
	cases := []struct {
		name string
		req  string
		want check
	}{
		{"video", `{"input":%q,"kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`, check{"h264", 1280, 720, 6}},
		{"audio", `{"input":%q,"kind":"audio","options":{"format":"mp3","quality":"high"}}`, check{"mp3", 0, 0, 6}},
		{"image", `{"input":%q,"kind":"image","options":{"start":5,"format":"webp","width":640}}`, check{"webp", 640, 360, 0}},
		{"adaptive", `{"input":%q,"kind":"adaptive_video","options":{"format":"hls","quality":"high"}}`, check{"h264", 480, 270, 6}},
		{"s3 output", `{"input":%q,"kind":"video","output":"s3://outputs/processed/video.mp4"}`, check{"h264", 480, 270, 6}},
		{"s3 input", `{"input":"s3://inputs/sources/clip.mov","kind":"video","options":{"width":320,"codec":"vp9"}}`, check{"vp9", 320, 180, 6}},
	}
	ids := make([]string, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		body := tc.req
		if strings.Contains(body, "%q") {
			body = fmt.Sprintf(body, in)
		}
		var req api.CreateTaskRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := f.users.Create(context.Background(), req, client.CreateOptions{})
			if err != nil {
				t.Errorf("%s: create: %v", tc.name, err)
				return
			}
			ids[i] = task.ID
		}()
	}
	wg.Wait()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if ids[i] == "" {
				t.Skip("not created")
			}
			task := f.wait(t, ids[i], 4*time.Minute)
			if task.Status != api.TaskCompleted || task.Output == nil {
				t.Fatalf("task %s: %s %+v", task.ID, task.Status, task.Error)
			}
			for _, s := range task.Steps {
				if s.Status != api.StepCompleted || s.StartedAt == nil || s.FinishedAt == nil || len(s.Output) == 0 || s.Node == nil || s.Attempt < 1 {
					t.Errorf("step %s: status %s started %v finished %v node %v attempt %d output %s", s.Kind, s.Status, s.StartedAt, s.FinishedAt, s.Node, s.Attempt, s.Output)
				}
			}
			var enc struct{ Encoder string }
			if json.Unmarshal(task.Steps[2].Options, &enc); enc.Encoder == "" {
				t.Errorf("encode step options lack the encoder: %s", task.Steps[2].Options)
			}
			if strings.HasPrefix(tc.req, `{"input":%q,"kind":"video","output"`) && *task.Output != "s3://outputs/processed/video.mp4" {
				t.Errorf("output %s, want the requested s3:// URL", *task.Output)
			}
			local := filepath.Join(t.TempDir(), "result")
			var r encoderstest.Report
			if tc.name == "adaptive" {
				// ffprobe reads the master playlist over HTTP: the renditions
				// resolve relative to the signed URL.
				r = encoderstest.Probe(t, *task.Output)
			} else {
				f.fetch(t, *task.Output, local)
				r = encoderstest.Probe(t, local)
			}
			s := r.Video()
			if tc.want.width == 0 {
				s = r.Audio()
			}
			if s == nil || s.CodecName != tc.want.codec || s.Width != tc.want.width || s.Height != tc.want.height {
				t.Errorf("result: %+v, want %s %dx%d", s, tc.want.codec, tc.want.width, tc.want.height)
			}
			if tc.want.duration > 0 && math.Abs(r.Duration()-tc.want.duration) > 0.15 {
				t.Errorf("duration %.3f, want %.1f", r.Duration(), tc.want.duration)
			}
		})
	}
}

// TestAgentKilledMidEncode kills the agent running an encode: the step runs
// again on the other agent, the task completes, nothing partial appears at
// the destination, and the dead agent's late report is refused.
func TestAgentKilledMidEncode(t *testing.T) {
	f := mustFleet(t, map[string]string{"long.mov": clips.Path(t, encoderstest.Long)})
	req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: f.files.URL + "/long.mov", Output: "s3://outputs/killed/video.webm",
		Options: encoders.Options{Codec: encoders.CodecAV1, Quality: encoders.QualityVeryHigh}}
	task, err := f.users.Create(context.Background(), req, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var victim *proc
	var first api.Step
	wait.For(t, "the encode to be under way", 2*time.Minute, func() error {
		cur, err := f.users.Get(context.Background(), task.ID)
		if err != nil {
			return err
		}
		s := cur.Steps[2]
		if s.Status != api.StepProcessing || s.Node == nil || s.Progress == nil || *s.Progress <= 0 {
			return fmt.Errorf("encode step %s progress %v", s.Status, s.Progress)
		}
		first = s
		for _, a := range f.agents {
			if a.name == *s.Node {
				victim = a
			}
		}
		return nil
	})
	listOut := func() []string {
		out, err := f.s3.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("outputs"), Prefix: aws.String("killed/")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		return keys
	}
	if keys := listOut(); len(keys) != 0 {
		t.Fatalf("objects at the destination while encoding: %v", keys)
	}
	// The agent's plugin processes and the ffmpeg of its encode must die
	// with it.
	children := descendants(processes(t), victim.cmd.Process.Pid)
	var sawFFmpeg bool
	for _, c := range children {
		sawFFmpeg = sawFFmpeg || c.comm == "ffmpeg"
	}
	if len(children) == 0 || !sawFFmpeg {
		t.Fatalf("agent %s runs no plugin or ffmpeg process: %+v", victim.name, children)
	}
	victim.Kill(t)
	killedAt := time.Now()
	t.Logf("killed agent %s (and its %d child processes) during attempt %d of the encode", victim.name, len(children), first.Attempt)
	pollUntil(t, 10*time.Second, "the agent's plugins and ffmpeg to die", func() bool {
		now := processes(t)
		for _, c := range children {
			if p, ok := now[c.pid]; ok && p.state != 'Z' && p.comm == c.comm {
				return false
			}
		}
		return true
	})

	final := f.wait(t, task.ID, 4*time.Minute)
	recovered := time.Since(killedAt)
	if final.Status != api.TaskCompleted {
		t.Fatalf("task %s: %+v", final.Status, final.Error)
	}
	enc := final.Steps[2]
	if enc.Attempt <= first.Attempt || enc.Node == nil || *enc.Node == victim.name {
		t.Errorf("encode step: attempt %d on %v, want a later attempt on the other agent", enc.Attempt, enc.Node)
	}
	if keys := listOut(); len(keys) != 1 || keys[0] != "killed/video.webm" {
		t.Errorf("destination holds %v, want only killed/video.webm", keys)
	}
	local := filepath.Join(t.TempDir(), "video.webm")
	f.fetch(t, "s3://outputs/killed/video.webm", local)
	if v := encoderstest.Probe(t, local).Video(); v == nil || v.CodecName != "av1" || v.Width != 640 {
		t.Errorf("result %+v", v)
	}

	// The dead agent's report of its attempt arrives late: refused.
	body := fmt.Sprintf(`{"task_id":%q,"attempt":%d,"outcome":"completed","output":{"object":"file","url":"s3://outputs/forged.webm"}}`, task.ID, first.Attempt)
	req2, _ := http.NewRequest("POST", f.servers[0].URL()+"/internal/steps/"+first.ID+"/report", strings.NewReader(body))
	req2.Header.Set("Authorization", "Bearer "+testNodeToken)
	resp, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("late report of attempt %d: %s %s, want 409", first.Attempt, resp.Status, msg)
	}
	after, _ := f.users.Get(context.Background(), task.ID)
	if after.Status != api.TaskCompleted || *after.Output != "s3://outputs/killed/video.webm" || after.Steps[0].Attempt != final.Steps[0].Attempt ||
		after.Steps[2].Attempt != final.Steps[2].Attempt || after.UpdatedAt != final.UpdatedAt {
		t.Errorf("the late report changed the task")
	}

	// The whole fleet stopped and started again: the same state, a
	// cancelled task in it too.
	extra, err := f.users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindAudio, Input: f.files.URL + "/long.mov"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.users.Cancel(context.Background(), extra.ID); err != nil {
		t.Fatal(err)
	}
	settled, restarted, same := f.restart(t)

	fig := figures{
		heading: "## TestAgentKilledMidEncode: an agent SIGKILLed mid-encode, then the whole fleet restarted",
		intro: "`test/pipeline_test.go`. Three servers, two agents, versitygw; an 8 s clip to AV1 at very_high quality with an\n" +
			"s3:// output. Once the encode reports progress, the agent running it is SIGKILLed. After the task completes, every\n" +
			"server and agent is stopped (SIGTERM) and started again from its data folder.",
	}
	fig.add("killed", "agent %s during attempt %d of the encode step", victim.name, first.Attempt)
	fig.add("recovery", "the other agent ran attempt %d; the task completed %s after the kill (heartbeat TTL 1 s + 1 s grace in this test)", enc.Attempt, seconds(recovered))
	fig.add("destination", "only the final object; nothing partial was visible while encoding")
	fig.add("late report of the dead attempt", "refused with 409; the task unchanged")
	fig.add("fleet restarted", "%d tasks, same state hash on all three servers %s after the start; same task JSON (signed URLs aside): %v", settled.Tasks, seconds(restarted), same)
	fig.write(t)
}

// TestAgentDrain sends SIGTERM to the agent running an encode: it takes no
// new work, hands the encode back when its drain time is up and exits 0;
// the other agent runs the step again and the task completes.
func TestAgentDrain(t *testing.T) {
	f := mustFleet(t, map[string]string{"long.mov": clips.Path(t, encoderstest.Long)})
	req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: f.files.URL + "/long.mov", Output: "s3://outputs/drained/video.webm",
		Options: encoders.Options{Codec: encoders.CodecAV1, Quality: encoders.QualityVeryHigh}}
	task, err := f.users.Create(context.Background(), req, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var victim, other *proc
	var first api.Step
	wait.For(t, "the encode to be under way", 2*time.Minute, func() error {
		cur, err := f.users.Get(context.Background(), task.ID)
		if err != nil {
			return err
		}
		s := cur.Steps[2]
		if s.Status != api.StepProcessing || s.Node == nil || s.Progress == nil || *s.Progress <= 0 {
			return fmt.Errorf("encode step %s progress %v", s.Status, s.Progress)
		}
		first = s
		return nil
	})
	for _, a := range f.agents {
		if a.name == *first.Node {
			victim = a
		} else {
			other = a
		}
	}
	stopped := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		victim.Stop(t) // fails the test unless it exits 0 within 30 s
		stopped <- time.Since(start)
	}()
	wait.For(t, "the leader to mark the agent draining or gone", 10*time.Second, func() error {
		nodes, err := f.nodes.Nodes(context.Background())
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Name == victim.name && n.Status != "ready" {
				return nil
			}
		}
		return fmt.Errorf("%s still ready: %+v", victim.name, nodes)
	})
	// Work created while the agent drains goes to the other one.
	later, err := f.users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindAudio, Input: f.files.URL + "/long.mov"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	took := <-stopped

	final := f.wait(t, task.ID, 4*time.Minute)
	if final.Status != api.TaskCompleted {
		t.Fatalf("task %s: %+v", final.Status, final.Error)
	}
	enc := final.Steps[2]
	handedBack := enc.Attempt > first.Attempt
	if handedBack && (enc.Node == nil || *enc.Node != other.name) {
		t.Errorf("encode step: attempt %d on %v, want it on %s", enc.Attempt, enc.Node, other.name)
	}
	if !handedBack {
		// The encode finished inside the drain time: also right, but
		// then the hand-back went untested.
		t.Logf("the encode finished on %s during its %s drain", victim.name, seconds(took))
	}
	for _, s := range final.Steps[3:] {
		if handedBack && (s.Node == nil || *s.Node != other.name) {
			t.Errorf("step %s ran on %v after the drain, want %s", s.Kind, s.Node, other.name)
		}
	}
	local := filepath.Join(t.TempDir(), "video.webm")
	f.fetch(t, "s3://outputs/drained/video.webm", local)
	if v := encoderstest.Probe(t, local).Video(); v == nil || v.CodecName != "av1" || v.Width != 640 {
		t.Errorf("result %+v", v)
	}
	l := f.wait(t, later.ID, 2*time.Minute)
	if l.Status != api.TaskCompleted {
		t.Fatalf("task created during the drain: %s %+v", l.Status, l.Error)
	}
	for _, s := range l.Steps {
		if s.Node == nil || *s.Node != other.name {
			t.Errorf("task created during the drain: step %s ran on %v, want %s", s.Kind, s.Node, other.name)
		}
	}
	log, _ := os.ReadFile(victim.logs()[0])
	if handedBack && !strings.Contains(string(log), "handing back unfinished steps") {
		t.Errorf("the agent's log does not tell of the hand-back:\n%s", victim.tail(20))
	}

	fig := figures{
		heading: "## TestAgentDrain: an agent SIGTERMed mid-encode",
		intro: "`test/pipeline_test.go`. Three servers, two agents (`--drain-timeout 1s`), versitygw; an 8 s clip to AV1 at\n" +
			"very_high quality. Once the encode reports progress, the agent running it gets SIGTERM; a second task is created\n" +
			"while it drains.",
	}
	fig.add("drained", "agent %s exited 0 %s after SIGTERM", victim.name, seconds(took))
	fig.add("encode", "attempt %d ran on %v to completion; attempt %d was on %s (handed back: %v)", enc.Attempt, *enc.Node, first.Attempt, victim.name, handedBack)
	fig.add("new work while draining", "all of it on %s", other.name)
	fig.write(t)
}

// restart stops every agent and server (SIGTERM) and starts them again
// from their data folders. Every server must come back with the state the
// cluster had (the same hash of all tasks), and every task must read the
// same, but for the expiry and signature of signed file URLs. It returns
// the state, how long the servers took to reach it, and whether the tasks
// read the same.
func (f *fleet) restart(t *testing.T) (nodeState, time.Duration, bool) {
	t.Helper()
	settled := waitSameState(t, 30*time.Second, f.servers...)
	before := listAll(t, f.servers[0].URL())
	var running []*proc
	for _, a := range f.agents {
		if a.running() {
			a.Stop(t)
			running = append(running, a)
		}
	}
	for _, s := range f.servers {
		s.Stop(t)
	}
	start := time.Now()
	for _, s := range f.servers {
		s.mustStart(t)
	}
	mustReady(t, f.servers...)
	waitState(t, settled, time.Minute, f.servers...)
	took := time.Since(start)
	for _, a := range running {
		a.mustStart(t)
	}
	after := listAll(t, f.servers[0].URL())
	same := len(after) == len(before)
	for i := 0; same && i < len(after); i++ {
		same = unsigned(before[i]) == unsigned(after[i])
		if !same {
			t.Errorf("task %d reads differently after the restart:\nbefore %s\nafter  %s", i, before[i], after[i])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d tasks listed after the restart, %d before", len(after), len(before))
	}
	return settled, took, same
}

// signedPath is the signature and expiry of a signed file URL.
var signedPath = regexp.MustCompile(`/files/[^/]+/[0-9]+/`)

// unsigned is a task's JSON with the signature and expiry of its file URLs
// blanked: they are made afresh for each read.
func unsigned(task []byte) string {
	return signedPath.ReplaceAllString(string(task), "/files/SIG/EXP/")
}
