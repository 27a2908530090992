// Package scheduler places task steps on agents. Place is pure: ready
// steps × node views → placements, tested with tables. Dispatcher is the
// leader's working state around it: the ready queue, node liveness, leases
// and long-poll delivery, rebuilt from the replicated state whenever a node
// becomes leader.
package scheduler

import (
	"math"
	"sort"

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
	// HardwareInUse counts running hardware encodes per backend.
	HardwareInUse map[encoders.Backend]int
	// Running is the number of steps it runs (for spreading load).
	Running int
}

// Placement puts a step on a node.
type Placement struct {
	Ready
	Node string
	// Backend is the hardware backend counted for an encode placed for its
	// free session; software otherwise.
	Backend encoders.Backend
}

// Place assigns ready steps to nodes, oldest first. Encode steps go to a
// node that advertises the codec, preferring one with a free hardware
// session; any step prefers the node holding its input, then the least
// loaded node; a retry prefers any other node to the one that failed it. Steps held back (NotBefore after now) or with no fitting
// node are left for later.
func Place(ready []Ready, nodes []NodeView, now int64) []Placement {
	queue := append([]Ready(nil), ready...)
	sort.SliceStable(queue, func(i, j int) bool { return queue[i].ReadyAt < queue[j].ReadyAt })
	free := make([]NodeView, len(nodes))
	for i, n := range nodes {
		free[i] = n
		free[i].HardwareInUse = make(map[encoders.Backend]int, len(n.HardwareInUse))
		for b, c := range n.HardwareInUse {
			free[i].HardwareInUse[b] = c
		}
	}
	var out []Placement
	for _, r := range queue {
		if r.NotBefore > now {
			continue
		}
		best, bestScore := -1, math.MinInt
		var bestBackend encoders.Backend
		for i := range free {
			n := &free[i]
			if n.Free <= 0 {
				continue
			}
			backend, ok := fit(r, n)
			if !ok {
				continue
			}
			score := 0
			if backend != encoders.BackendSoftware && backend != "" {
				score += 1000 // hardware first
			}
			if r.Prefer != "" && r.Prefer == n.Name {
				score += 100 // locality
			}
			score += 50 - min(n.Running, 50) // spread
			if r.Avoid != "" && r.Avoid == n.Name {
				score -= 500 // elsewhere, unless only hardware is here
			}
			if score > bestScore {
				best, bestScore, bestBackend = i, score, backend
			}
		}
		if best < 0 {
			continue
		}
		n := &free[best]
		n.Free--
		n.Running++
		if bestBackend != "" && bestBackend != encoders.BackendSoftware {
			n.HardwareInUse[bestBackend]++
		}
		out = append(out, Placement{Ready: r, Node: n.Name, Backend: bestBackend})
	}
	return out
}

// fit reports whether n can run r, and for an encode the backend it would
// use: hardware with a free session for the codec, else software.
func fit(r Ready, n *NodeView) (encoders.Backend, bool) {
	if !r.IsEncode() {
		return "", true
	}
	hw := encoders.Backend("")
	software := false
	for _, c := range n.Capabilities {
		if !c.Available {
			continue
		}
		if r.Codec != "" && c.Codec != r.Codec {
			continue
		}
		if c.Backend == encoders.BackendSoftware {
			software = true
			continue
		}
		if r.Codec == "" {
			continue // audio and images: software
		}
		if c.MaxSessions == 0 || n.HardwareInUse[c.Backend] < c.MaxSessions {
			hw = c.Backend
		}
	}
	switch {
	case hw != "":
		return hw, true
	case software:
		return encoders.BackendSoftware, true
	case r.Codec == "" && len(n.Capabilities) == 0:
		return encoders.BackendSoftware, true // a node that reports nothing still has ffmpeg
	}
	return "", false
}
