package scheduler

import (
	"sort"

	"github.com/ittybit-oss/ittybit/encoders"
)

// queue holds the ready steps in the order they became ready. Steps
// arrive nearly in ReadyAt order (new tasks, completed predecessors,
// retries all become ready "now"), so an append-only list of ids beside a
// map gives FIFO order cheaply: a scheduling pass reads from the head only
// as far as it has free slots, whatever the length of the queue.
type queue struct {
	items map[string]Ready
	order []string // step ids; entries no longer in items are skipped
	head  int
}

func newQueue() *queue { return &queue{items: map[string]Ready{}} }

func (q *queue) len() int { return len(q.items) }

// push adds or replaces a ready step.
func (q *queue) push(r Ready) {
	if _, ok := q.items[r.StepID]; !ok {
		q.order = append(q.order, r.StepID)
	}
	q.items[r.StepID] = r
}

// remove drops a step (placed, cancelled). An emptied queue lets go of
// what a burst made it hold: Go maps never shrink.
func (q *queue) remove(id string) {
	delete(q.items, id)
	if len(q.items) == 0 && cap(q.order) > 1024 {
		q.items, q.order, q.head = map[string]Ready{}, nil, 0
	}
}

// sortByReady reorders the list by ReadyAt (after a rebuild).
func (q *queue) sortByReady() {
	q.compact()
	sort.SliceStable(q.order, func(i, j int) bool { return q.items[q.order[i]].ReadyAt < q.items[q.order[j]].ReadyAt })
}

// compact forgets the dead entries of the list.
func (q *queue) compact() {
	live := q.order[:0]
	if cap(q.order) > 4*len(q.items)+1024 {
		live = make([]string, 0, 2*len(q.items)) // a burst has passed
	}
	for _, id := range q.order[q.head:] {
		if _, ok := q.items[id]; ok {
			live = append(live, id)
		}
	}
	// A step pushed twice (removed, then queued again) appears once.
	seen := make(map[string]bool, len(live))
	out := live[:0]
	for _, id := range live {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	q.order, q.head = out, 0
}

// candidates returns up to limit ready steps, oldest first, that may run
// now and that some node could take (codecs, from supported).
func (q *queue) candidates(now int64, limit int, supported func(Ready) bool) []Ready {
	var out []Ready
	dead := 0
	seen := map[string]bool{}
	for i := q.head; i < len(q.order) && len(out) < limit; i++ {
		id := q.order[i]
		r, ok := q.items[id]
		if !ok || seen[id] {
			if i == q.head {
				q.head++ // a dead entry at the head: never look at it again
			} else {
				dead++
			}
			continue
		}
		seen[id] = true
		if r.NotBefore > now || !supported(r) {
			continue
		}
		out = append(out, r)
	}
	if dead > 1024 && dead > len(q.items) {
		q.compact()
	}
	if q.head > 4096 && q.head > len(q.order)/2 {
		q.compact()
	}
	return out
}

// codecSet reports which encode requirements the live nodes can meet.
type codecSet map[string]bool

func supportedBy(nodes []NodeView) func(Ready) bool {
	have := codecSet{}
	parts := false
	for _, n := range nodes {
		parts = parts || n.Parts
		if len(n.Capabilities) == 0 {
			have[""] = true
		}
		for _, c := range n.Capabilities {
			if c.Available {
				have[c.Codec] = true
				if c.Backend == encoders.BackendSoftware {
					have[""] = true
				}
			}
		}
	}
	return func(r Ready) bool { return (!r.Part || parts) && (!r.IsEncode() || have[r.Codec]) }
}
