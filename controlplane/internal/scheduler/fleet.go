package scheduler

import (
	"sort"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// The fleet as the leader sees it, for GET /fleet and the console: what
// each agent runs now, the ready queue by step kind, and how many seconds
// of media the fleet encodes per second, over the last minutes.

// rateBucket is how long one point of the throughput history covers, and
// rateBuckets how many are kept (10 minutes).
const (
	rateBucket  = 5 * time.Second
	rateBuckets = 120
)

// rate is a ring of media seconds encoded per bucket.
type rate struct {
	seconds [rateBuckets]float64
	at      [rateBuckets]int64 // the bucket's start, unix ms; 0: unused
}

// add counts s media seconds encoded at now.
func (r *rate) add(now time.Time, s float64) {
	if s <= 0 {
		return
	}
	start := now.Truncate(rateBucket)
	i := int(start.UnixNano()/int64(rateBucket)) % rateBuckets
	if r.at[i] != start.UnixMilli() {
		r.at[i], r.seconds[i] = start.UnixMilli(), 0
	}
	r.seconds[i] += s
}

// points returns the history up to now, oldest first, one point per
// bucket (idle buckets as 0), each in media seconds per second; the
// bucket under way is left out.
func (r *rate) points(now time.Time) []api.RatePoint {
	cur := now.Truncate(rateBucket)
	out := make([]api.RatePoint, 0, rateBuckets-1)
	for k := rateBuckets - 1; k >= 1; k-- {
		start := cur.Add(-time.Duration(k) * rateBucket)
		i := int(start.UnixNano()/int64(rateBucket)) % rateBuckets
		v := 0.0
		if r.at[i] == start.UnixMilli() {
			v = r.seconds[i] / rateBucket.Seconds()
		}
		out = append(out, api.RatePoint{At: start.UnixMilli(), Value: v})
	}
	return out
}

// Fleet describes the agents (with the steps each runs), the ready queue
// by step kind, and the throughput history.
func (d *Dispatcher) Fleet() api.Fleet {
	agents := d.Nodes()
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	f := api.Fleet{Object: "fleet", Agents: agents, Queue: map[string]int{}, Throughput: d.rate.points(now)}
	for i := range f.Agents {
		a := &f.Agents[i]
		a.Steps = []api.NodeStep{}
		if ns := d.nodes[a.Name]; ns != nil {
			for _, l := range ns.running {
				s := api.NodeStep{Task: l.taskID, Step: l.stepID, Kind: l.kind, Attempt: l.attempt, Progress: l.progress.Progress}
				if l.part != nil {
					s.Part = &l.part.Index
				}
				a.Steps = append(a.Steps, s)
			}
			sort.Slice(a.Steps, func(i, j int) bool { return a.Steps[i].Step < a.Steps[j].Step })
		}
	}
	if d.ready != nil {
		for k, n := range d.ready.tally.kinds {
			f.Queue[k] = n
		}
	}
	return f
}

// isEncode says whether a step (or part) of this kind encodes media: every
// kind but probe, ingest and upload.
func isEncode(kind string) bool {
	return kind != api.StepProbe && kind != api.StepIngest && kind != api.StepUpload
}
