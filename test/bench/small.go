package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// smallJob is one of the small tasks: what a media API mostly does.
type smallJob struct {
	name   string
	source string // file name in the media folder
	req    api.CreateTaskRequest
	cli    []string // the CLI's arguments, after -i SOURCE -o OUT
	ext    string
}

// smallMedia makes the sources of the small tasks: a 10 s 720p video
// with sound, a 1920×1080 JPEG photo, a 10 s stereo WAV.
func smallMedia(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, args := range map[string][]string{
		"clip.mp4": {"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=10,noise=alls=6:allf=t", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10",
			"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
		"photo.jpg": {"-f", "lavfi", "-i", "testsrc2=size=1920x1080,noise=alls=10", "-frames:v", "1", "-q:v", "3"},
		"sound.wav": {"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10", "-ac", "2"},
	} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		argv := append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...), p)
		if out, err := exec.CommandContext(ctx, "ffmpeg", argv...).CombinedOutput(); err != nil {
			return fmt.Errorf("make %s: %v: %s", name, err, out)
		}
	}
	return nil
}

// cmdCPU is the CPU time a finished command used.
func cmdCPU(cmd *exec.Cmd) time.Duration {
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// runBare runs argv, returning its wall and CPU time.
func runBare(ctx context.Context, argv []string) (time.Duration, time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("%s: %v: %s", argv[0], err, lastLine(out))
	}
	return time.Since(start), cmdCPU(cmd), nil
}

// treeCPU is the CPU time of a process and its live descendants, with
// the children each has reaped: the whole `ittybit dev` tree (itself,
// its plugin processes, and the ffprobe and ffmpeg runs they waited for).
func treeCPU(pid int) (time.Duration, error) {
	tick := 100.0 // USER_HZ on Linux
	var total float64
	var walk func(pid int) error
	walk = func(pid int) error {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(fields[i], 64)
			total += v
		}
		// Each thread lists the children it started.
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, tid := range tasks {
			kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, tid.Name()))
			for _, k := range strings.Fields(string(kids)) {
				if id, err := strconv.Atoi(k); err == nil {
					_ = walk(id) // a child may end while we read
				}
			}
		}
		return nil
	}
	if err := walk(pid); err != nil {
		return 0, err
	}
	return time.Duration(total / tick * float64(time.Second)), nil
}

// benchSmall measures the small tasks against the two processes their
// work needs: one ffprobe and one ffmpeg.
func benchSmall(ctx context.Context, e *env, c config, rep *report) error {
	media := filepath.Join(e.dir, "small-media")
	if err := smallMedia(ctx, media); err != nil {
		return err
	}
	files, err := fileServer(ctx, media)
	if err != nil {
		return err
	}
	jobs := []smallJob{
		{name: "poster frame (10 s 720p h264 → jpeg at 5 s)", source: "clip.mp4", ext: "jpg",
			req: api.CreateTaskRequest{Kind: encoders.KindImage, Options: encoders.Options{Start: ptr(5.0), Format: "jpeg"}},
			cli: []string{"image", "--start", "5", "--format", "jpeg"}},
		{name: "image resize (1920×1080 jpeg → webp 320 wide)", source: "photo.jpg", ext: "webp",
			req: api.CreateTaskRequest{Kind: encoders.KindImage, Options: encoders.Options{Width: encoders.Px(320), Format: "webp"}},
			cli: []string{"image", "--width", "320", "--format", "webp"}},
		{name: "audio extraction (10 s wav → mp3)", source: "sound.wav", ext: "mp3",
			req: api.CreateTaskRequest{Kind: encoders.KindAudio, Options: encoders.Options{Format: "mp3"}},
			cli: []string{"audio", "--format", "mp3"}},
	}
	dev, err := e.start(ctx, "small-dev", nil, "dev", "--http", "127.0.0.1:0", "--data", filepath.Join(e.dir, "small-dev"))
	if err != nil {
		return err
	}
	defer dev.stop()
	if err := dev.waitReady(ctx); err != nil {
		return err
	}
	users := client.New(dev.url, apiKey)
	out := filepath.Join(e.dir, "small-out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	runs := max(c.smallRuns, 9)
	s := &section{
		title: "9. Small tasks against one ffprobe and one ffmpeg",
		intro: fmt.Sprintf("Poster frames, resizes and audio extractions take a fraction of a second of ffmpeg; this measures what the pipeline adds to them. "+
			"The **anchor** is the work itself, bare: the probe step's exact `ffprobe` command, then the exact `ffmpeg` command the task's encode step ran (rebuilt from its plan), on the local file. "+
			"**ittybit dev** is the task's own `created_at` → `finished_at` (probe, ingest, encode, upload; the input fetched over HTTP from loopback). "+
			"The **CLI** is the wall time of `ittybit image|audio -i FILE -o OUT …` (local mode). Medians of %d interleaved runs each, after one warm-up. "+
			"**CPU per task**: a burst of %d tasks of each kind posted at once to `ittybit dev`; the CPU time of its whole process tree (itself, its plugin processes and every ffprobe and ffmpeg they ran) over the burst, divided by the tasks, against the anchor's CPU time (user + system of its two processes).", runs, c.smallBurst),
		header: []string{"task", "anchor s", "dev s", "× anchor", "CLI s", "× anchor", "anchor CPU ms", "dev CPU ms/task (burst)", "× anchor"},
	}
	met := true
	for _, j := range jobs {
		src := filepath.Join(media, j.source)
		req := j.req
		req.Input = files + "/" + j.source
		var anchor, task, cli, anchorCPU []float64
		for i := -1; i < runs; i++ {
			t, err := runTask(ctx, users, req)
			if err != nil {
				return fmt.Errorf("%s: %w", j.name, err)
			}
			encArgs, err := encodeArgs(t, src, filepath.Join(out, "bare."+j.ext))
			if err != nil {
				return err
			}
			pw, pc, err := runBare(ctx, probe.Args(src))
			if err != nil {
				return err
			}
			ew, ec, err := runBare(ctx, append([]string{"ffmpeg"}, encArgs...))
			if err != nil {
				return err
			}
			cliArgs := append([]string{j.cli[0], "-i", src, "-o", filepath.Join(out, fmt.Sprintf("cli%d.%s", i+1, j.ext))}, j.cli[1:]...)
			cw, _, err := runBare(ctx, append([]string{e.bin}, cliArgs...))
			if err != nil {
				return err
			}
			if i < 0 {
				continue
			}
			d := time.Duration(*t.FinishedAt-t.CreatedAt) * time.Millisecond
			anchor, task, cli = append(anchor, secs(pw+ew)), append(task, secs(d)), append(cli, secs(cw))
			anchorCPU = append(anchorCPU, secs(pc+ec))
			fmt.Fprintf(os.Stderr, "   %s run %d: anchor %.3fs (ffprobe %.3f + ffmpeg %.3f), dev %.3fs (%s), CLI %.3fs\n",
				j.source, i+1, secs(pw+ew), secs(pw), secs(ew), secs(d), breakdown(t), secs(cw))
		}
		burst, err := burstCPU(ctx, dev, users, req, c.smallBurst)
		if err != nil {
			return fmt.Errorf("%s burst: %w", j.name, err)
		}
		ma, mt, mc, mcpu := median(anchor), median(task), median(cli), median(anchorCPU)
		perTask := secs(burst) / float64(c.smallBurst)
		s.rows = append(s.rows, []string{j.name, f3(ma), f3(mt), f2(mt / ma), f3(mc), f2(mc / ma),
			fmt.Sprintf("%.0f", mcpu*1000), fmt.Sprintf("%.0f", perTask*1000), f2(perTask / mcpu)})
		met = met && mt/ma <= 1.25 && mc/ma <= 1.3 && perTask/mcpu <= 1.3
		s.notes = append(s.notes, fmt.Sprintf("%s: anchor runs %s; dev %s; CLI %s.", j.name, list(anchor), list(task), list(cli)))
	}
	s.target = "every task: dev ≤ 1.25 × anchor, CLI ≤ 1.3 × anchor, dev CPU per task in a burst ≤ 1.3 × the anchor's CPU"
	s.met = verdict(met)
	rep.add(s)
	return nil
}

// runTask posts a task and waits for it to complete, polling often (the
// time measured is the task's own created_at → finished_at).
func runTask(ctx context.Context, c *client.Client, req api.CreateTaskRequest) (*api.Task, error) {
	t, err := c.Create(ctx, req, client.CreateOptions{})
	if err != nil {
		return nil, err
	}
	cur, err := c.Wait(ctx, t.ID, 20*time.Millisecond, nil)
	if err != nil {
		return nil, err
	}
	if cur.Status != api.TaskCompleted || cur.FinishedAt == nil {
		return nil, fmt.Errorf("task %s %s: %+v", cur.ID, cur.Status, cur.Error)
	}
	return cur, nil
}

// burstCPU posts n tasks at once and returns the CPU time the dev process
// tree spent until all completed.
func burstCPU(ctx context.Context, dev *proc, c *client.Client, req api.CreateTaskRequest, n int) (time.Duration, error) {
	pid := dev.cmd.Process.Pid
	before, err := treeCPU(pid)
	if err != nil {
		return 0, err
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			t, err := c.Create(ctx, req, client.CreateOptions{})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = t.ID
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	// One waiter, in turn: most are done by the time it asks, so polling
	// costs the server next to nothing.
	for _, id := range ids {
		cur, err := c.Wait(ctx, id, 250*time.Millisecond, nil)
		if err != nil {
			return 0, err
		}
		if cur.Status != api.TaskCompleted {
			return 0, fmt.Errorf("task %s %s", cur.ID, cur.Status)
		}
	}
	after, err := treeCPU(pid)
	if err != nil {
		return 0, err
	}
	return after - before, nil
}

func ptr[T any](v T) *T { return &v }
