package scheduler

import (
	"slices"
	"sort"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// The ready queue: higher priorities first; within a priority, the
// projects share the fleet by weighted round robin (a project with weight
// w gets up to w steps a round), and a project's own steps go in the
// order they became ready. So a project that submits 10,000 tasks delays
// another's next task by about one step a free slot, not by its backlog.
//
// Each (priority, project) has a lane: an append-only list of step ids
// beside the one map of items. Steps arrive nearly in ReadyAt order (new
// tasks, completed predecessors, retries all become ready "now"), so a
// lane is FIFO cheaply, and a scheduling pass reads each lane from its
// head only as far as it has free slots, whatever the length of the
// queue.

// Priorities of tasks, lowest first: Ready.Priority.
const (
	PriorityLow    = 0
	PriorityNormal = 1
	PriorityHigh   = 2
)

// laneKey names a lane.
type laneKey struct {
	priority int
	project  string
}

// lane is one project's ready steps at one priority.
type lane struct {
	order []string // step ids; entries no longer in items are skipped
	head  int
}

type queue struct {
	items map[string]Ready
	lanes map[laneKey]*lane
	// rounds lists, per priority, the projects that have a lane, in the
	// order of the round robin; start is where the next pass begins.
	rounds map[int][]string
	start  map[int]int
	// fifo puts every step in one lane: first come, first served (the
	// baseline the benchmark compares with).
	fifo bool
	// weight is a project's share of a round (at least 1).
	weight func(project string) int
	// tally counts the items for the metrics and the fleet view.
	tally tally
}

// tally counts a queue's steps by kind, project and priority, and its
// parts, kept as steps come and go, so that a metrics scrape reads the
// queue in time that does not grow with it. Counted at each scrape, a
// leader with 150,000 queued tasks took 40 ms a scrape (1.6 ms with the
// tally), holding the dispatcher's lock, which the state machine's apply
// of the next entry waits on.
type tally struct {
	kinds, projects map[string]int
	priorities      map[int]int
	parts           int
}

func newTally() tally {
	return tally{kinds: map[string]int{}, projects: map[string]int{}, priorities: map[int]int{}}
}

// add counts r once more (by delta 1) or once less (by -1), forgetting
// the names it no longer counts.
func (t *tally) add(r Ready, delta int) {
	bump(t.kinds, r.Kind, delta)
	bump(t.projects, r.Project, delta)
	bump(t.priorities, r.Priority, delta)
	if api.IsPartID(r.StepID) {
		t.parts += delta
	}
}

func bump[K comparable](m map[K]int, k K, delta int) {
	if n := m[k] + delta; n != 0 {
		m[k] = n
	} else {
		delete(m, k)
	}
}

func newQueue() *queue {
	return &queue{items: map[string]Ready{}, lanes: map[laneKey]*lane{}, rounds: map[int][]string{}, start: map[int]int{}, tally: newTally()}
}

func (q *queue) len() int { return len(q.items) }

func (q *queue) laneOf(r Ready) laneKey {
	if q.fifo {
		return laneKey{}
	}
	return laneKey{r.Priority, r.Project}
}

// push adds or replaces a ready step.
func (q *queue) push(r Ready) {
	prev, ok := q.items[r.StepID]
	q.items[r.StepID] = r
	if ok {
		q.tally.add(prev, -1)
	}
	q.tally.add(r, 1)
	if ok && q.laneOf(prev) == q.laneOf(r) {
		return
	}
	k := q.laneOf(r)
	l := q.lanes[k]
	if l == nil {
		l = &lane{}
		q.lanes[k] = l
		q.rounds[k.priority] = append(q.rounds[k.priority], k.project)
	}
	l.order = append(l.order, r.StepID)
}

// remove drops a step (placed, cancelled). An emptied queue lets go of
// what a burst made it hold: Go maps never shrink.
func (q *queue) remove(id string) {
	r, ok := q.items[id]
	if !ok {
		return
	}
	delete(q.items, id)
	q.tally.add(r, -1)
	if len(q.items) == 0 && len(q.lanes) > 0 {
		q.items, q.lanes, q.rounds, q.start, q.tally = map[string]Ready{}, map[laneKey]*lane{}, map[int][]string{}, map[int]int{}, newTally()
	}
}

// sortByReady reorders each lane by ReadyAt (after a rebuild).
func (q *queue) sortByReady() {
	for k, l := range q.lanes {
		q.compact(k, l)
		sort.SliceStable(l.order, func(i, j int) bool { return q.items[l.order[i]].ReadyAt < q.items[l.order[j]].ReadyAt })
	}
}

// compact forgets the dead entries of a lane: steps gone, or now in
// another lane (queued again at another priority), and repeats.
func (q *queue) compact(k laneKey, l *lane) {
	live := l.order[:0]
	if n := len(l.order) - l.head; cap(l.order) > 4*n+1024 {
		live = make([]string, 0, 2*n) // a burst has passed
	}
	seen := map[string]bool{}
	for _, id := range l.order[l.head:] {
		if r, ok := q.items[id]; ok && !seen[id] && q.laneOf(r) == k {
			seen[id] = true
			live = append(live, id)
		}
	}
	l.order, l.head = live, 0
}

// dropLane forgets an empty lane and its place in the round.
func (q *queue) dropLane(k laneKey) {
	delete(q.lanes, k)
	round := q.rounds[k.priority]
	if i := slices.Index(round, k.project); i >= 0 {
		q.rounds[k.priority] = slices.Delete(round, i, i+1)
		if q.start[k.priority] > i {
			q.start[k.priority]--
		}
	}
}

// candidates returns up to limit ready steps that may run now and that
// some node could take (codecs, from supported): the highest priority
// first, its projects in turn (each up to its weight a round, starting
// one further at each pass), each project's oldest first.
func (q *queue) candidates(now int64, limit int, supported func(Ready) bool) []Ready {
	var out []Ready
	for p := PriorityHigh; p >= PriorityLow && len(out) < limit; p-- {
		out = q.fromPriority(p, now, limit, supported, out)
	}
	return out
}

// cursor walks one lane in a pass.
type cursor struct {
	key  laneKey
	l    *lane
	at   int
	dead int // entries passed that are gone, behind the lane's head
}

func (q *queue) fromPriority(p int, now int64, limit int, supported func(Ready) bool, out []Ready) []Ready {
	round := q.rounds[p]
	if len(round) == 0 {
		return out
	}
	first := q.start[p] % len(round)
	q.start[p] = first + 1 // the next pass starts with the next project
	var active, all []*cursor
	for i := range round {
		k := laneKey{p, round[(first+i)%len(round)]}
		if l := q.lanes[k]; l != nil {
			active = append(active, &cursor{key: k, l: l, at: l.head})
			all = append(all, active[len(active)-1])
		}
	}
	var emptied []laneKey
	for len(out) < limit && len(active) > 0 {
		next := active[:0]
		for _, c := range active {
			w := 1
			if q.weight != nil && !q.fifo {
				w = max(1, q.weight(c.key.project))
			}
			took, done := 0, false
			for took < w && len(out) < limit {
				r, ok := q.next(c, now, supported)
				if !ok {
					done = true
					break
				}
				out = append(out, r)
				took++
			}
			if !done {
				next = append(next, c)
			}
		}
		active = next
	}
	for _, c := range all {
		switch l := c.l; {
		case l.head >= len(l.order):
			emptied = append(emptied, c.key)
		case c.dead > 1024 || l.head > 4096 && l.head > len(l.order)/2:
			q.compact(c.key, l)
		}
	}
	for _, k := range emptied {
		q.dropLane(k)
	}
	return out
}

// next returns the lane's next step that may run now, moving the cursor
// past it, or false at the lane's end. Dead entries at the lane's head are
// passed for good.
func (q *queue) next(c *cursor, now int64, supported func(Ready) bool) (Ready, bool) {
	l := c.l
	for ; c.at < len(l.order); c.at++ {
		id := l.order[c.at]
		r, ok := q.items[id]
		if !ok || q.laneOf(r) != c.key {
			if c.at == l.head {
				l.head++ // never look at it again
			} else {
				c.dead++
			}
			continue
		}
		if r.NotBefore > now || !supported(r) {
			continue
		}
		c.at++
		return r, true
	}
	return Ready{}, false
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
