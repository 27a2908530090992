package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
)

// benchOverhead times the seed's video example (1080p30 → 720p h264,
// quality high) through `ittybit dev`, from POST to completed, against the
// very ffmpeg command its encode step ran, run bare; and the CLI's local
// mode against the same bare command. Runs are interleaved.
func benchOverhead(ctx context.Context, e *env, c config, rep *report) error {
	clip, err := e.clip(ctx, c.clipSecs)
	if err != nil {
		return err
	}
	files, err := fileServer(ctx, filepath.Dir(clip))
	if err != nil {
		return err
	}
	dev, err := e.start(ctx, "overhead-dev", nil, "dev", "--http", "127.0.0.1:0", "--data", filepath.Join(e.dir, "overhead-dev"))
	if err != nil {
		return err
	}
	defer dev.stop()
	if err := dev.waitReady(ctx); err != nil {
		return err
	}
	users := client.New(dev.url, apiKey)
	req := api.CreateTaskRequest{Kind: encoders.KindVideo, Input: files + "/" + filepath.Base(clip),
		Options: encoders.Options{Width: encoders.Px(1280), Height: encoders.Px(720), Format: "mp4", Quality: encoders.QualityHigh}}

	var bareArgs []string
	var lastBreakdown string
	var task, bare, cli []float64
	out := filepath.Join(e.dir, "overhead-out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// One warm-up of each, not counted: page cache, plugin start.
	for i := -1; i < c.runs; i++ {
		d, t, err := timeTask(ctx, users, req)
		if err != nil {
			return err
		}
		if bareArgs == nil {
			if bareArgs, err = encodeArgs(t, clip, filepath.Join(out, "bare.mp4")); err != nil {
				return err
			}
		}
		db, err := timeCmd(ctx, "ffmpeg", bareArgs...)
		if err != nil {
			return err
		}
		dc, err := timeCmd(ctx, e.bin, "video", "-i", clip, "-o", filepath.Join(out, fmt.Sprintf("cli%d.mp4", i+1)),
			"--width", "1280", "--height", "720", "--format", "mp4", "--quality", "high")
		if err != nil {
			return err
		}
		if i >= 0 {
			task, bare, cli = append(task, secs(d)), append(bare, secs(db)), append(cli, secs(dc))
		}
		fmt.Fprintf(os.Stderr, "   run %d: task %.2fs (%s), bare ffmpeg %.2fs, CLI %.2fs\n", i+1, secs(d), breakdown(t), secs(db), secs(dc))
		lastBreakdown = breakdown(t)
	}
	mt, mb, mc := median(task), median(bare), median(cli)
	s := &section{
		title: "1. Overhead against bare ffmpeg",
		intro: fmt.Sprintf("A %d s 1080p30 clip (testsrc2 with light noise, about 6 Mbit/s, sound) → 1280×720 h264 mp4, `quality: high`: the seed's video example. "+
			"**ittybit dev** is timed from sending `POST /tasks` to the task's `finished_at` (read back by polling twice a second; probe, ingest, encode, upload: fetched over HTTP from loopback, "+
			"stored, encoded through the software plugin, published); **bare ffmpeg** runs the exact argument list the encode step ran, on the local file; "+
			"the **CLI** runs `ittybit video -i clip.mov -o out.mp4 --width 1280 --height 720 --format mp4 --quality high`. Median of %d interleaved runs each, after one warm-up.", c.clipSecs, c.runs),
		header: []string{"what", "median s", "runs (s)", "ratio to bare ffmpeg"},
		rows: [][]string{
			{"bare ffmpeg (anchor)", f2(mb), list(bare), "1.00"},
			{"ittybit dev, POST → completed", f2(mt), list(task), f3(mt / mb)},
			{"ittybit CLI, local mode", f2(mc), list(cli), f3(mc / mb)},
		},
		target: "task ≤ 1.05 × bare ffmpeg",
		met:    verdict(mt/mb <= 1.05),
	}
	s.notes = append(s.notes, "The bare command: `ffmpeg "+shellJoin(bareArgs)+"`.",
		"Where the task's time went in the last run (wait before each step, then its run): "+lastBreakdown+".")
	rep.add(s)
	return nil
}

// timeTask posts a task and follows it to the end. The end is the task's
// finished_at (the server's clock, this machine's): the client polls as a
// client would, twice a second, since polling faster would take CPU from
// the encode it measures.
func timeTask(ctx context.Context, c *client.Client, req api.CreateTaskRequest) (time.Duration, *api.Task, error) {
	start := time.Now()
	t, err := c.Create(ctx, req, client.CreateOptions{})
	if err != nil {
		return 0, nil, err
	}
	cur, err := c.Wait(ctx, t.ID, 500*time.Millisecond, nil)
	if err != nil {
		return 0, nil, err
	}
	if cur.Status != api.TaskCompleted || cur.FinishedAt == nil {
		return 0, nil, fmt.Errorf("task %s %s: %+v", cur.ID, cur.Status, cur.Error)
	}
	return time.UnixMilli(*cur.FinishedAt).Sub(start), cur, nil
}

// encodeArgs rebuilds the ffmpeg arguments the task's encode step ran:
// its plan (the step's options) on the source its probe step read.
func encodeArgs(t *api.Task, input, output string) ([]string, error) {
	var plan encoders.Plan
	if err := json.Unmarshal(t.Steps[2].Options, &plan); err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	if err := json.Unmarshal(t.Steps[0].Output, &plan.Source); err != nil {
		return nil, fmt.Errorf("read the probe: %w", err)
	}
	return ffmpeg.Args(plan, input, output)
}

func timeCmd(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %v: %s", name, err, lastLine(out))
	}
	return time.Since(start), nil
}

// breakdown renders each step's wait (from the previous step's end, or the
// task's creation) and run time.
func breakdown(t *api.Task) string {
	prev := t.CreatedAt
	var parts []string
	for _, s := range t.Steps {
		if s.StartedAt == nil || s.FinishedAt == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d+%d ms", s.Kind, *s.StartedAt-prev, *s.FinishedAt-*s.StartedAt))
		prev = *s.FinishedAt
	}
	if t.FinishedAt != nil {
		parts = append(parts, fmt.Sprintf("done +%d ms", *t.FinishedAt-prev))
	}
	return strings.Join(parts, ", ")
}
