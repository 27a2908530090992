package scheduler

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

func sw(codecs ...string) []encoders.Capability {
	var out []encoders.Capability
	for _, c := range codecs {
		out = append(out, encoders.Capability{Plugin: "software", Backend: encoders.BackendSoftware, Codec: c, Available: true})
	}
	return out
}

func nvenc(max int, codecs ...string) []encoders.Capability {
	var out []encoders.Capability
	for _, c := range codecs {
		out = append(out, encoders.Capability{Plugin: "nvenc", Backend: encoders.BackendNVENC, Codec: c, Available: true, MaxSessions: max})
	}
	return out
}

func placed(ps []Placement) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p.StepID] = p.Node + "/" + string(p.Backend)
	}
	return m
}

func TestPlace(t *testing.T) {
	all := sw("h264", "h265", "vp9", "av1")
	tests := []struct {
		name  string
		ready []Ready
		nodes []NodeView
		want  map[string]string
	}{
		{
			name:  "hardware preferred for its codec",
			ready: []Ready{{StepID: "s1", Kind: "video", Codec: "h264"}},
			nodes: []NodeView{{Name: "cpu", Free: 2, Capabilities: all}, {Name: "gpu", Free: 2, Capabilities: append(nvenc(5, "h264"), all...)}},
			want:  map[string]string{"s1": "gpu/nvenc"},
		},
		{
			name:  "no hardware for vp9: software, least loaded",
			ready: []Ready{{StepID: "s1", Kind: "video", Codec: "vp9"}},
			nodes: []NodeView{{Name: "gpu", Free: 2, Running: 1, Capabilities: append(nvenc(5, "h264"), all...)}, {Name: "cpu", Free: 2, Capabilities: all}},
			want:  map[string]string{"s1": "cpu/software"},
		},
		{
			name: "session limit counted",
			ready: []Ready{
				{StepID: "s1", Kind: "video", Codec: "h264", ReadyAt: 1},
				{StepID: "s2", Kind: "video", Codec: "h264", ReadyAt: 2},
				{StepID: "s3", Kind: "video", Codec: "h264", ReadyAt: 3},
			},
			nodes: []NodeView{{Name: "gpu", Free: 3, Capabilities: append(nvenc(2, "h264"), all...), HardwareInUse: map[encoders.Backend]int{encoders.BackendNVENC: 1}}},
			want:  map[string]string{"s1": "gpu/nvenc", "s2": "gpu/software", "s3": "gpu/software"},
		},
		{
			name:  "codec nobody has waits",
			ready: []Ready{{StepID: "s1", Kind: "video", Codec: "av1"}},
			nodes: []NodeView{{Name: "n", Free: 2, Capabilities: sw("h264")}},
			want:  map[string]string{},
		},
		{
			name:  "locality",
			ready: []Ready{{StepID: "s1", Kind: "ingest", Prefer: "b"}},
			nodes: []NodeView{{Name: "a", Free: 2}, {Name: "b", Free: 2, Running: 1}},
			want:  map[string]string{"s1": "b/"},
		},
		{
			name: "slots and FIFO",
			ready: []Ready{
				{StepID: "late", Kind: "probe", ReadyAt: 9},
				{StepID: "early", Kind: "probe", ReadyAt: 1},
			},
			nodes: []NodeView{{Name: "a", Free: 1}},
			want:  map[string]string{"early": "a/"},
		},
		{
			name:  "backoff holds a retry",
			ready: []Ready{{StepID: "s1", Kind: "probe", NotBefore: 2000}},
			nodes: []NodeView{{Name: "a", Free: 1}},
			want:  map[string]string{},
		},
		{
			name:  "a retry goes elsewhere, even from the input's holder",
			ready: []Ready{{StepID: "s1", Kind: "ingest", Prefer: "a", Avoid: "a", Attempt: 1}},
			nodes: []NodeView{{Name: "a", Free: 2}, {Name: "b", Free: 2, Running: 1}},
			want:  map[string]string{"s1": "b/"},
		},
		{
			name:  "a retry stays when no other node fits",
			ready: []Ready{{StepID: "s1", Kind: "video", Codec: "av1", Avoid: "a", Attempt: 1}},
			nodes: []NodeView{{Name: "a", Free: 2, Capabilities: all}, {Name: "b", Free: 2, Capabilities: sw("h264")}},
			want:  map[string]string{"s1": "a/software"},
		},
		{
			name:  "a retry stays when the other node is full",
			ready: []Ready{{StepID: "s1", Kind: "probe", Avoid: "a", Attempt: 1}},
			nodes: []NodeView{{Name: "a", Free: 2}, {Name: "b", Free: 0}},
			want:  map[string]string{"s1": "a/"},
		},
		{
			name:  "audio needs software only",
			ready: []Ready{{StepID: "s1", Kind: "audio"}},
			nodes: []NodeView{{Name: "a", Free: 1, Capabilities: sw("h264")}},
			want:  map[string]string{"s1": "a/software"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := placed(Place(tc.ready, tc.nodes, 1000))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("placements (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadyOfRetry: a step queued again after failing on a node is placed
// away from that node; one handed back (released, no error) is not.
func TestReadyOfRetry(t *testing.T) {
	x := "x"
	task := &state.Task{Task: api.Task{ID: "task_1", Kind: encoders.KindVideo, Steps: []api.Step{
		{ID: "step_p", Kind: api.StepProbe, Status: api.StepQueued, Attempt: 1, Node: &x, Error: &api.Error{Kind: "internal", Message: "no space left on device"}},
	}}, Runs: make([]state.StepRun, 1)}
	if r := readyOf(task, 0); r.Avoid != "x" {
		t.Errorf("after a failure on x: Avoid %q, want x", r.Avoid)
	}
	task.Steps[0].Error = nil
	if r := readyOf(task, 0); r.Avoid != "" {
		t.Errorf("after a release: Avoid %q, want none", r.Avoid)
	}
}
