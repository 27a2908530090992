package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/test/fleetsim"
)

// Simulated split fleet: what the part scheduling costs, apart from
// ffmpeg. The agents are fleetsim's, each part taking a set time per
// second of its media.
const (
	splitFleetAgents   = 50
	splitFleetSource   = 3600.0                   // seconds of media
	splitFleetFPS      = 30                       // frames a second
	splitFleetPartTime = time.Second / 15         // a video part's time per media second: 2 s for 30 s
	splitFleetAudio    = splitFleetPartTime / 100 // the sound's part, per media second
	splitFleetSlow     = 5.0                      // how much slower the slow agent is
	splitFleetStepLen  = 50 * time.Millisecond
)

// benchSplitFleet runs a one-hour video split into 30 s parts through 50
// simulated agents, one of them five times slower than the others, with
// backups of straggling parts on and off, and compares each makespan of
// the parts with the ideal: the best schedule of the same parts on agents
// of the same speeds.
func benchSplitFleet(ctx context.Context, e *env, c config, rep *report) error {
	type result struct {
		name               string
		parts              int
		makespan, task     time.Duration
		ideal, fluid       time.Duration
		backups, slowTaken int
	}
	var results []result
	for _, backups := range []bool{true, false} {
		name := map[bool]string{true: "backups on", false: "backups off"}[backups]
		flags := []string{}
		if !backups {
			flags = append(flags, "--straggler-factor", "-1")
		}
		t, slow, err := splitFleetOnce(ctx, e, name, flags)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		enc := t.Steps[2]
		r := result{name: name, parts: len(enc.Parts)}
		var first, last int64
		var durations []time.Duration
		for _, p := range enc.Parts {
			if p.StartedAt == nil || p.FinishedAt == nil {
				return fmt.Errorf("%s: part %d did not run: %s", name, p.Index, p.Status)
			}
			if first == 0 || *p.StartedAt < first {
				first = *p.StartedAt
			}
			last = max(last, *p.FinishedAt)
			per := splitFleetPartTime
			if p.Kind == api.PartAudio {
				per = splitFleetAudio
			}
			durations = append(durations, time.Duration((p.End-p.Start)*float64(per)))
			if p.Attempt > 1 {
				r.backups++
			}
			if p.Node != nil && *p.Node == slow {
				r.slowTaken++
			}
		}
		r.makespan = time.Duration(last-first) * time.Millisecond
		r.task = time.Duration(*t.FinishedAt-t.CreatedAt) * time.Millisecond
		r.ideal, r.fluid = idealMakespan(durations, splitFleetAgents, splitFleetSlow)
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "   %s: %d parts, parts' makespan %.2fs (ideal %.2fs, %.3f×; fluid %.2fs), task %.2fs; parts run again %d, completed on the slow agent %d\n",
			name, r.parts, secs(r.makespan), secs(r.ideal), secs(r.makespan)/secs(r.ideal), secs(r.fluid), secs(r.task), r.backups, r.slowTaken)
	}
	on := results[0]
	s := &section{
		title: "7. Split encodes on a simulated fleet",
		intro: fmt.Sprintf("One `ittybit server` (`--split-seconds 30`) and %d simulated agents (package `test/fleetsim`, one slot each, running parts: "+
			"a video part takes %s per second of its media, the sound's part %s, every other step %s); one agent is %.0f× slower at everything. "+
			"The task: a %.0f s video (its probe's report says so). *Makespan* runs from the first part's start to the last part's end; "+
			"*ideal* is the best schedule of the same parts on agents of the same speeds (each part, longest first, where it would end soonest), "+
			"*fluid* the work over the fleet's capacity, as if parts could be cut at will. With backups off (`--straggler-factor -1`) the slow agent's part "+
			"is waited for.",
			splitFleetAgents, splitFleetPartTime, splitFleetAudio, splitFleetStepLen, splitFleetSlow, splitFleetSource),
		header: []string{"run", "parts", "makespan s", "ideal s", "ratio to ideal", "fluid s", "task s", "parts run again"},
		target: "makespan ≤ 1.15 × ideal with backups on",
		met:    verdict(secs(on.makespan) <= 1.15*secs(on.ideal)),
	}
	for _, r := range results {
		s.rows = append(s.rows, []string{r.name, strconv.Itoa(r.parts), f2(secs(r.makespan)), f2(secs(r.ideal)), f3(secs(r.makespan) / secs(r.ideal)),
			f2(secs(r.fluid)), f2(secs(r.task)), strconv.Itoa(r.backups)})
	}
	rep.add(s)
	return nil
}

// splitFleetOnce runs the split task on a fresh server and fleet and
// returns it, finished, with the slow agent's name.
func splitFleetOnce(ctx context.Context, e *env, name string, flags []string) (*api.Task, string, error) {
	dir := filepath.Join(e.dir, "splitfleet-"+name)
	args := append([]string{"server", "--bootstrap", "--node-id", "sf", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0",
		"--data", filepath.Join(dir, "data"), "--storage", filepath.Join(dir, "files"), "--allow-private-inputs", "--rate-limit", "0",
		"--split-seconds", "30", "--split-min-seconds", "60"}, flags...)
	srv, err := e.start(ctx, "splitfleet-"+name, nil, args...)
	if err != nil {
		return nil, "", err
	}
	defer srv.stop()
	if err := srv.waitReady(ctx); err != nil {
		return nil, "", err
	}
	frames := int64(splitFleetSource * splitFleetFPS)
	probe, _ := json.Marshal(encoders.MediaInfo{Format: "mov", Duration: splitFleetSource, Width: 1920, Height: 1080, FPS: splitFleetFPS,
		FrameRate: strconv.Itoa(splitFleetFPS) + "/1", Codecs: encoders.Codecs{Video: "h264", Audio: "aac"}, HasAudio: true, HasVideo: true,
		Filesize: 4 << 30, Frames: frames, FramesCounted: true})
	slow := "sim-0007"
	nodes := client.New(srv.url, nodeToken, client.WithHTTPClient(&http.Client{Timeout: time.Minute}), client.WithRetries(20))
	fleet, err := fleetsim.Start(ctx, fleetsim.Config{Client: nodes, Agents: splitFleetAgents, Slots: 1, StepTime: splitFleetStepLen,
		Parts: true, PartTime: splitFleetPartTime, AudioPartTime: splitFleetAudio, ProbeOutput: probe, Slow: map[string]float64{slow: splitFleetSlow}})
	if err != nil {
		return nil, "", err
	}
	defer fleet.Stop()
	users := client.New(srv.url, apiKey)
	created, err := users.Create(ctx, api.CreateTaskRequest{Kind: encoders.KindVideo, Input: "http://127.0.0.1:9/film.mp4"}, client.CreateOptions{})
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		t, err := users.Get(ctx, created.ID)
		if err == nil && t.Status.Finished() {
			if t.Status != api.TaskCompleted {
				return nil, "", fmt.Errorf("task %s: %+v", t.Status, t.Error)
			}
			return t, slow, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, "", fmt.Errorf("the task did not finish within 5 minutes")
}

// idealMakespan is the makespan of the parts (their durations on a normal
// agent) placed longest first, each where it would end soonest, on agents
// one of which is slow × slower; and the fluid bound, the work over the
// fleet's capacity. For parts of about one length the first is the best
// schedule there is.
func idealMakespan(parts []time.Duration, agents int, slow float64) (ideal, fluid time.Duration) {
	ds := slices.Clone(parts)
	slices.SortFunc(ds, func(a, b time.Duration) int { return int(b - a) })
	free := make([]time.Duration, agents) // when each agent is free
	speed := func(i int) float64 {
		if i == 0 {
			return slow
		}
		return 1
	}
	var work time.Duration
	for _, d := range ds {
		work += d
		best := 0
		for i := range free {
			if free[i]+time.Duration(float64(d)*speed(i)) < free[best]+time.Duration(float64(d)*speed(best)) {
				best = i
			}
		}
		free[best] += time.Duration(float64(d) * speed(best))
		ideal = max(ideal, free[best])
	}
	return ideal, time.Duration(float64(work) / (float64(agents-1) + 1/slow))
}
