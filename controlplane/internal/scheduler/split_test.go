package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// probed is a probe step's output: a 12 s 25 fps source with sound whose
// 300 frames were counted.
var probed = `{"format":"mov","duration":12,"width":320,"height":240,"fps":25,"frame_rate":"25/1","codecs":{"video":"h264","audio":"aac"},` +
	`"has_audio":true,"has_video":true,"filesize":100000,"rotation":0,"frames":300,"frames_counted":true}`

// TestSplitRunsParts: a long enough video is split when its probe
// reports; its parts run on both agents at once, each leased with its
// part; once they are all in, the step itself (the stitch) runs where
// most parts ran, then the upload.
func TestSplitRunsParts(t *testing.T) {
	d, st := mustDispatcher(t, Config{SplitSeconds: 4, SplitMinSeconds: 10})
	register(t, d, "a")
	register(t, d, "b")
	id := addTask(t, st, d, encoders.KindVideo, "")
	probe := pollOne(t, d, "a", "b")
	if probe.Step != api.StepProbe {
		t.Fatalf("first %s, want probe", probe.Step)
	}
	complete(t, d, probe, probed)
	task, _ := st.TaskRecord(id)
	enc := task.Steps[2]
	if len(enc.Parts) != 4 || enc.Parts[3].Kind != api.PartAudio || enc.Parts[1].FirstFrame != 100 || enc.Parts[1].Frames != 100 {
		t.Fatalf("encode step parts %+v, want 3 video parts of 100 frames and the audio", enc.Parts)
	}
	complete(t, d, pollOne(t, d, "a", "b"), `{"url":"managed://tasks/x/source"}`) // ingest

	// Four parts, two slots on each agent: all four run at once.
	byNode := map[string][]api.Assignment{}
	for len(byNode["a"])+len(byNode["b"]) < 4 {
		for _, n := range []string{"a", "b"} {
			out, err := d.Assignments(context.Background(), n, 200*time.Millisecond, api.Received{})
			if err != nil {
				t.Fatal(err)
			}
			byNode[n] = append(byNode[n], out.Assignments...)
		}
	}
	if len(byNode["a"]) != 2 || len(byNode["b"]) != 2 {
		t.Errorf("parts per node: a %d, b %d; want 2 and 2", len(byNode["a"]), len(byNode["b"]))
	}
	var indexes []int
	for _, as := range byNode {
		for _, a := range as {
			if a.Part == nil || a.Step != "video" || a.StepID != a.Part.ID || a.Attempt != 1 {
				t.Fatalf("part assignment %+v", a)
			}
			indexes = append(indexes, a.Part.Index)
		}
	}
	slices.Sort(indexes)
	if !slices.Equal(indexes, []int{0, 1, 2, 3}) {
		t.Errorf("parts assigned %v", indexes)
	}
	// The parts end, the last one on a; two ran on each agent, and the
	// tie goes to a, which also ran the last.
	for _, a := range byNode["b"] {
		complete(t, d, a, `{}`)
	}
	complete(t, d, byNode["a"][0], `{}`)
	task, _ = st.TaskRecord(id)
	if task.Steps[2].Status != api.StepProcessing {
		t.Fatalf("with a part left the step is %s", task.Steps[2].Status)
	}
	if p, ok := d.Progress(byNode["a"][1].StepID); !ok || p != 0 {
		t.Errorf("a running part's progress: %v %v", p, ok)
	}
	complete(t, d, byNode["a"][1], `{}`)
	task, _ = st.TaskRecord(id)
	if r := readyOf(task, 2, -1); r.Prefer != "a" {
		t.Errorf("the stitch prefers %q, want a", r.Prefer)
	}
	stitch := poll(t, d, "a")
	if stitch.StepID != enc.ID || stitch.Part != nil || stitch.Attempt != 1 || len(stitch.Task.Steps[2].Parts) != 4 {
		t.Fatalf("after the parts: %+v, want the step itself on a, with its parts", stitch)
	}
	complete(t, d, stitch, `{"url":"managed://tasks/x/staging/1/output.mp4"}`)
	if up := poll(t, d, "a"); up.Step != api.StepUpload {
		t.Errorf("then %s, want upload", up.Step)
	}
}

// TestSplitNotWhenShortOrAlone: a short source, a source whose frames
// were not counted, a fleet with one free slot, or one whose agents do
// not run parts (an older version) runs unsplit.
func TestSplitNotWhenShortOrAlone(t *testing.T) {
	for name, tc := range map[string]struct {
		output   string
		nodes    []string
		oldAgent bool // the agents run no parts
	}{
		"short":       {`{"duration":8,"fps":25,"frame_rate":"25/1","has_video":true,"frames":200,"frames_counted":true}`, []string{"a", "b"}, false},
		"not counted": {`{"duration":12,"fps":25,"frame_rate":"25/1","has_video":true,"frames":300}`, []string{"a", "b"}, false},
		"one slot":    {probed, []string{"a"}, false},
		"old agents":  {probed, []string{"a", "b"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			d, st := mustDispatcher(t, Config{SplitSeconds: 4, SplitMinSeconds: 10})
			for _, n := range tc.nodes {
				d.Register(context.Background(), api.NodeRegistration{Name: n, Slots: 1, Capabilities: sw("h264"), Parts: !tc.oldAgent})
			}
			id := addTask(t, st, d, encoders.KindVideo, "")
			complete(t, d, pollOne(t, d, tc.nodes...), tc.output)
			task, _ := st.TaskRecord(id)
			if task.Steps[2].Parts != nil {
				t.Errorf("split into %d parts", len(task.Steps[2].Parts))
			}
		})
	}
}

// pollOne polls the nodes in turn until one has an assignment.
func pollOne(t *testing.T, d *Dispatcher, nodes ...string) api.Assignment {
	t.Helper()
	for range 50 {
		for _, n := range nodes {
			out, err := d.Assignments(context.Background(), n, 100*time.Millisecond, api.Received{})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Assignments) > 0 {
				return out.Assignments[0]
			}
		}
	}
	t.Fatalf("no assignment for %v", nodes)
	return api.Assignment{}
}

// TestPartsLongestFirst: the sound's part, the whole track, is placed
// before the picture's parts, which keep their order.
func TestPartsLongestFirst(t *testing.T) {
	if got := longestFirst([]api.Part{{End: 4}, {Start: 4, End: 8.04}, {Start: 8.04, End: 12}, {Kind: api.PartAudio, End: 12}}); !slices.Equal(got, []int{3, 0, 1, 2}) {
		t.Errorf("order %v, want [3 0 1 2]", got)
	}
	d, st := mustDispatcher(t, Config{SplitSeconds: 4, SplitMinSeconds: 10})
	register(t, d, "a") // two slots: the first two parts to run
	id := addTask(t, st, d, encoders.KindVideo, "")
	complete(t, d, poll(t, d, "a"), probed)
	complete(t, d, poll(t, d, "a"), `{"url":"managed://tasks/x/source"}`)
	var got []int
	for len(got) < 2 {
		out, err := d.Assignments(context.Background(), "a", time.Second, api.Received{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range out.Assignments {
			got = append(got, a.Part.Index)
		}
	}
	if task, _ := st.TaskRecord(id); !slices.Equal(got, []int{3, 0}) || task.Steps[2].Parts[3].Kind != api.PartAudio {
		t.Errorf("first parts placed %v, want the audio (3) then part 0", got)
	}
}
