// Package scheduler places task steps on agents. Place is pure: ready
// steps × node views → placements, tested with tables. Dispatcher is the
// leader's working state around it: the ready queue, node liveness, leases
// and long-poll delivery, rebuilt from the replicated state whenever a node
// becomes leader.
package scheduler

import (
	"maps"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Ready is a step that can run now.
type Ready struct {
	TaskID string
	StepID string
	// Kind is the step kind: probe, ingest, upload, or an encode kind.
	Kind string
	// Codec is the video codec an encode step needs; "" when any software
	// encoder will do (audio, image).
	Codec string
	// Prefer names the node that holds the step's input, if any.
	Prefer string
	// Avoid names the node whose attempt at the step failed last: a retry
	// goes to another node that fits, if there is one (the failure may be
	// the node's: a full disk, a broken device).
	Avoid string
	// Attempt is the step's attempt number so far; the placement leases
	// Attempt+1.
	Attempt int
	// ReadyAt orders the queue (epoch ms); NotBefore holds back a retry.
	ReadyAt   int64
	NotBefore int64
	// Part marks a part of a split step: only a node that runs parts
	// (NodeView.Parts) takes it.
	Part bool
	// Project and Priority choose the step's lane in the queue: higher
	// priorities first, projects in turn within one.
	Project  string
	Priority int
}

// IsEncode reports whether the step encodes.
func (r Ready) IsEncode() bool { return encoders.Kind(r.Kind).Valid() }

// NodeView is what placement knows of a live node that takes work.
type NodeView struct {
	Name string
	// Free is the number of steps it can start now.
	Free int
	// Capabilities are what its plugins detected.
	Capabilities []encoders.Capability
	// HardwareInUse counts running hardware encodes per backend (nil:
	// none).
	HardwareInUse map[encoders.Backend]int
	// Running is the number of steps it runs (for spreading load).
	Running int
	// Parts is set when the agent runs the parts of split steps.
	Parts bool
}

// Placement puts a step on a node.
type Placement struct {
	Ready
	Node string
	// Backend is the hardware backend counted for an encode placed for its
	// free session; software otherwise.
	Backend encoders.Backend
}

// Place assigns ready steps to nodes in the order given (the queue's:
// priority, then projects in turn, each project's oldest first). Encode steps go to a
// node that advertises the codec, preferring one with a free hardware
// session; any step prefers the node holding its input, then the least
// loaded node (ties: the node listed first, then those that took a step
// last); a retry prefers any other node to the one that failed it. Steps
// held back (NotBefore after now) or with no fitting node are left for
// later.
//
// Each step costs a few lookups per class of nodes (nodes with the same
// capabilities), not a scan of the fleet: the nodes of a class wait in
// buckets by load, so that a pass over thousands of steps and nodes stays
// linear.
func Place(ready []Ready, nodes []NodeView, now int64) []Placement {
	p := newPlacer(nodes)
	var out []Placement
	for _, r := range ready {
		if p.free == 0 {
			break
		}
		if r.NotBefore > now {
			continue
		}
		if pl, ok := p.place(r); ok {
			out = append(out, pl)
		}
	}
	return out
}

// Scores of a placement: hardware first, then the input's holder, then
// the least loaded node; the node that failed a retry last of all.
const (
	scoreHardware = 1000
	scorePrefer   = 100
	scoreAvoid    = -500
	maxSpread     = 50 // nodes running this many steps or more count as equally loaded
)

func spread(running int) int { return min(running, maxSpread) }

// placer is one pass's view of the nodes.
type placer struct {
	nodes   []NodeView
	byName  map[string]int
	class   []*nodeClass // by node index
	classes []*nodeClass
	free    int
}

// nodeClass is the nodes with the same capabilities, and what they can
// run.
type nodeClass struct {
	caps []encoders.Capability
	// software holds the codecs a software encoder is available for;
	// anySoftware: audio and images fit (some software encoder, or no
	// capabilities reported at all: a node that reports nothing still has
	// ffmpeg).
	software    map[string]bool
	anySoftware bool
	hwCodecs    []string // codecs with a hardware encoder
	parts       bool     // the class's agents run parts of split steps
	all         ladder   // the class's nodes with free slots, by load
	hwFree      map[string]*ladder
}

func newPlacer(nodes []NodeView) *placer {
	p := &placer{nodes: make([]NodeView, len(nodes)), byName: make(map[string]int, len(nodes)), class: make([]*nodeClass, len(nodes))}
	byKey := map[string]*nodeClass{}
	for i, n := range nodes {
		p.nodes[i] = n
		p.nodes[i].HardwareInUse = maps.Clone(n.HardwareInUse) // nil stays nil: made when a session is taken
		p.byName[n.Name] = i
		if n.Free > 0 {
			p.free += n.Free
		}
		key := capsKey(n.Capabilities)
		if n.Parts {
			key += "+parts"
		}
		c := byKey[key]
		if c == nil {
			c = newNodeClass(n.Capabilities)
			c.parts = n.Parts
			byKey[key] = c
			p.classes = append(p.classes, c)
		}
		p.class[i] = c
		p.enter(i)
	}
	return p
}

// capsKey identifies a set of capabilities.
func capsKey(caps []encoders.Capability) string {
	var b strings.Builder
	for _, c := range caps {
		if c.Available {
			b.WriteString(string(c.Backend))
			b.WriteByte('/')
			b.WriteString(c.Codec)
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(c.MaxSessions))
			b.WriteByte(';')
		}
	}
	return b.String()
}

func newNodeClass(caps []encoders.Capability) *nodeClass {
	c := &nodeClass{caps: caps, software: map[string]bool{}, hwFree: map[string]*ladder{}, anySoftware: len(caps) == 0}
	for _, cp := range caps {
		switch {
		case !cp.Available:
		case cp.Backend == encoders.BackendSoftware:
			c.software[cp.Codec], c.anySoftware = true, true
		case c.hwFree[cp.Codec] == nil:
			c.hwFree[cp.Codec] = &ladder{}
			c.hwCodecs = append(c.hwCodecs, cp.Codec)
		}
	}
	return c
}

// enter files node i in its class's ladders at its current load.
func (p *placer) enter(i int) {
	n := &p.nodes[i]
	if n.Free <= 0 {
		return
	}
	c := p.class[i]
	c.all.add(i, spread(n.Running))
	for _, codec := range c.hwCodecs {
		if hardwareFor(n, codec) != "" {
			c.hwFree[codec].add(i, spread(n.Running))
		}
	}
}

// hardwareFor returns the hardware backend with a free session for the
// codec on n (the last listed, where several have one), or "".
func hardwareFor(n *NodeView, codec string) encoders.Backend {
	hw := encoders.Backend("")
	for _, c := range n.Capabilities {
		if c.Available && c.Codec == codec && c.Backend != encoders.BackendSoftware &&
			(c.MaxSessions == 0 || n.HardwareInUse[c.Backend] < c.MaxSessions) {
			hw = c.Backend
		}
	}
	return hw
}

// softwareFits reports whether the class can run r in software (or r is
// not an encode).
func (c *nodeClass) softwareFits(r Ready) bool {
	switch {
	case !r.IsEncode():
		return true
	case r.Codec == "":
		return c.anySoftware
	}
	return c.software[r.Codec]
}

// candidate is a node a step could go to, and how good a choice it is.
type candidate struct {
	node    int
	backend encoders.Backend
	score   int
}

func (p *placer) score(i int, backend encoders.Backend, r Ready) candidate {
	n := &p.nodes[i]
	s := maxSpread - spread(n.Running)
	if backend != "" && backend != encoders.BackendSoftware {
		s += scoreHardware
	}
	if r.Prefer != "" && r.Prefer == n.Name {
		s += scorePrefer
	}
	if r.Avoid != "" && r.Avoid == n.Name {
		s += scoreAvoid
	}
	return candidate{node: i, backend: backend, score: s}
}

// fitNode is what node i offers r now (see fits).
func (p *placer) fitNode(i int, r Ready) (encoders.Backend, bool) {
	if p.nodes[i].Free <= 0 {
		return "", false
	}
	return fits(&p.nodes[i], r)
}

// fits is what node n offers r: for an encode, the hardware backend with
// a free session, else software; ok false when it cannot run r at all.
func fits(n *NodeView, r Ready) (encoders.Backend, bool) {
	if r.Part && !n.Parts {
		return "", false
	}
	if !r.IsEncode() {
		return "", true
	}
	if r.Codec != "" {
		if hw := hardwareFor(n, r.Codec); hw != "" {
			return hw, true
		}
	}
	software := len(n.Capabilities) == 0 && r.Codec == ""
	for _, c := range n.Capabilities {
		if c.Available && c.Backend == encoders.BackendSoftware && (r.Codec == "" || c.Codec == r.Codec) {
			software = true
		}
	}
	if software {
		return encoders.BackendSoftware, true
	}
	return "", false
}

// place picks r's node, if one fits, and takes the slot.
func (p *placer) place(r Ready) (Placement, bool) {
	best := candidate{node: -1}
	consider := func(c candidate) {
		if best.node < 0 || c.score > best.score || (c.score == best.score && c.node < best.node) {
			best = c
		}
	}
	avoid := -1
	if i, ok := p.byName[r.Avoid]; ok && r.Avoid != "" {
		avoid = i
	}
	for _, name := range []string{r.Prefer, r.Avoid} {
		if i, ok := p.byName[name]; ok && name != "" {
			if backend, fits := p.fitNode(i, r); fits {
				consider(p.score(i, backend, r))
			}
		}
	}
	for _, c := range p.classes {
		if r.Part && !c.parts {
			continue
		}
		if r.IsEncode() && r.Codec != "" {
			if l := c.hwFree[r.Codec]; l != nil {
				if i := l.best(avoid, func(i int) bool { return hardwareFor(&p.nodes[i], r.Codec) != "" }, p.nodes); i >= 0 {
					consider(p.score(i, hardwareFor(&p.nodes[i], r.Codec), r))
					continue // a hardware node of the class beats its software nodes
				}
			}
		}
		if !c.softwareFits(r) {
			continue
		}
		if i := c.all.best(avoid, nil, p.nodes); i >= 0 {
			backend := encoders.Backend("")
			if r.IsEncode() {
				backend = encoders.BackendSoftware
			}
			consider(p.score(i, backend, r))
		}
	}
	if best.node < 0 {
		return Placement{}, false
	}
	n := &p.nodes[best.node]
	n.Free--
	n.Running++
	p.free--
	if best.backend != "" && best.backend != encoders.BackendSoftware {
		if n.HardwareInUse == nil {
			n.HardwareInUse = map[encoders.Backend]int{}
		}
		n.HardwareInUse[best.backend]++
	}
	p.enter(best.node)
	return Placement{Ready: r, Node: n.Name, Backend: best.backend}, true
}

// ladder files nodes in buckets by load. A node is filed again when its
// load changes; an entry whose node has moved on, filled up or no longer
// qualifies is stale and skipped (and dropped once at a bucket's head).
type ladder struct {
	buckets [maxSpread + 1][]int
	head    [maxSpread + 1]int
}

func (l *ladder) add(i, load int) { l.buckets[load] = append(l.buckets[load], i) }

// best returns the least loaded live node other than skip (-1: none):
// filed at its current load, with a free slot, and qualifying (ok nil:
// any).
func (l *ladder) best(skip int, ok func(int) bool, nodes []NodeView) int {
	live := func(i, load int) bool {
		n := &nodes[i]
		return n.Free > 0 && spread(n.Running) == load && (ok == nil || ok(i))
	}
	for load := range l.buckets {
		b := l.buckets[load]
		for l.head[load] < len(b) && !live(b[l.head[load]], load) {
			l.head[load]++
		}
		for k := l.head[load]; k < len(b); k++ {
			if i := b[k]; i != skip && live(i, load) {
				return i
			}
		}
	}
	return -1
}
