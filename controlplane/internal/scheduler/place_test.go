package scheduler

import (
	"fmt"
	"math/rand/v2"
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
			// The queue's order (its lanes: priority, project, then
			// ReadyAt), not ReadyAt alone.
			name: "slots, in the queue's order",
			ready: []Ready{
				{StepID: "late", Kind: "probe", ReadyAt: 9},
				{StepID: "early", Kind: "probe", ReadyAt: 1},
			},
			nodes: []NodeView{{Name: "a", Free: 1}},
			want:  map[string]string{"late": "a/"},
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
	if r := readyOf(task, 0, -1); r.Avoid != "x" {
		t.Errorf("after a failure on x: Avoid %q, want x", r.Avoid)
	}
	task.Steps[0].Error = nil
	if r := readyOf(task, 0, -1); r.Avoid != "" {
		t.Errorf("after a release: Avoid %q, want none", r.Avoid)
	}
}

// TestPlaceBestScore checks Place's bucketed search against a scan of
// every node: on random fleets (mixed software, hardware with session
// limits, nodes reporting nothing) and random steps, each step goes to a
// node with the highest score any node offers at that moment, and a step
// is left only when no node fits.
func TestPlaceBestScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	codecs := []string{"h264", "h265", "vp9", "av1"}
	kinds := []string{"probe", "ingest", "video", "audio", "image", "upload"}
	for round := range 300 {
		var nodes []NodeView
		for i := range 1 + rng.IntN(40) {
			var caps []encoders.Capability
			switch rng.IntN(4) {
			case 0: // reports nothing
			case 1:
				caps = sw(codecs[:1+rng.IntN(4)]...)
			default:
				caps = append(nvenc(rng.IntN(4), codecs[:1+rng.IntN(2)]...), sw(codecs...)...)
			}
			nodes = append(nodes, NodeView{Name: fmt.Sprintf("n%d", i), Free: rng.IntN(4), Running: rng.IntN(60), Capabilities: caps,
				HardwareInUse: map[encoders.Backend]int{encoders.BackendNVENC: rng.IntN(3)}})
		}
		p := newPlacer(nodes)
		for k := range 80 {
			r := Ready{StepID: fmt.Sprint(k), Kind: kinds[rng.IntN(len(kinds))]}
			if r.Kind == "video" {
				r.Codec = codecs[rng.IntN(len(codecs))]
			}
			if rng.IntN(3) == 0 {
				r.Prefer = nodes[rng.IntN(len(nodes))].Name
			}
			if rng.IntN(4) == 0 {
				r.Avoid = nodes[rng.IntN(len(nodes))].Name
			}
			want := -1 << 30
			for i := range p.nodes {
				if backend, ok := p.fitNode(i, r); ok {
					want = max(want, p.score(i, backend, r).score)
				}
			}
			pl, ok := p.place(r)
			if !ok {
				if want != -1<<30 {
					t.Fatalf("round %d step %d (%+v): not placed, but a node scores %d", round, k, r, want)
				}
				continue
			}
			i := p.byName[pl.Node]
			// Undo the slot taken to score the choice as it was made.
			n := &p.nodes[i]
			n.Free++
			n.Running--
			if pl.Backend == encoders.BackendNVENC {
				n.HardwareInUse[pl.Backend]--
			}
			got := p.score(i, pl.Backend, r).score
			if backend, fits := p.fitNode(i, r); !fits || backend != pl.Backend {
				t.Fatalf("round %d step %d: placed on %s/%s, which offers %q (fits %v)", round, k, pl.Node, pl.Backend, backend, fits)
			}
			n.Free--
			n.Running++
			if pl.Backend == encoders.BackendNVENC {
				n.HardwareInUse[pl.Backend]++
			}
			if got != want {
				t.Fatalf("round %d step %d (%+v): placed on %s scoring %d, best is %d", round, k, r, pl.Node, got, want)
			}
		}
	}
}

// BenchmarkPlace places a full pass on a fleet of 1,000 nodes.
func BenchmarkPlace(b *testing.B) {
	var nodes []NodeView
	for i := range 1000 {
		nodes = append(nodes, NodeView{Name: fmt.Sprintf("n%d", i), Free: 2, Capabilities: sw("h264", "h265", "vp9", "av1")})
	}
	var ready []Ready
	for k := range 8000 {
		ready = append(ready, Ready{StepID: fmt.Sprint(k), Kind: []string{"probe", "ingest", "video", "upload"}[k%4], Codec: "h264", ReadyAt: int64(k)})
	}
	for b.Loop() {
		if got := len(Place(ready, nodes, 1<<40)); got != 2000 {
			b.Fatalf("placed %d, want 2000", got)
		}
	}
}

// TestPlacePartsOnlyOnPartNodes: the part of a split step goes only to an
// agent that runs parts, however idle the others.
func TestPlacePartsOnlyOnPartNodes(t *testing.T) {
	nodes := []NodeView{
		{Name: "old", Free: 4, Capabilities: sw("h264")},
		{Name: "new", Free: 1, Running: 3, Capabilities: sw("h264"), Parts: true},
	}
	ready := []Ready{
		{TaskID: "t", StepID: "s.p0", Kind: "video", Codec: "h264", Part: true, ReadyAt: 1},
		{TaskID: "t", StepID: "s.p1", Kind: "video", Codec: "h264", Part: true, ReadyAt: 2},
		{TaskID: "u", StepID: "u.s0", Kind: "probe", ReadyAt: 3},
	}
	got := map[string]string{}
	for _, p := range Place(ready, nodes, 10) {
		got[p.StepID] = p.Node
	}
	if got["s.p0"] != "new" || got["s.p1"] != "" || got["u.s0"] != "old" {
		t.Errorf("placements %v: want s.p0 on new, s.p1 waiting (new is full), the probe on old", got)
	}
	if supportedBy(nodes[:1])(ready[0]) {
		t.Error("a fleet without part agents takes parts")
	}
}
