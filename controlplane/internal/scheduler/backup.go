package scheduler

import (
	"context"
	"slices"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Stragglers. A split step is as slow as its slowest part: one part on a
// slow, overloaded or stopped agent holds the whole task back while the
// rest of the fleet idles. As MapReduce does near a job's end, the leader
// starts a backup copy of such a part on an idle agent; the first copy to
// finish wins (each has its own attempt, the fencing token) and the other
// is stopped, its output discarded.

// A part is a straggler when, with most of its step's parts done and at
// least StragglerMin run, its progress says it will finish well after a
// fresh copy would (one taking the median time of the parts done); or,
// when it tells no progress (none yet, or it stopped moving), once it has
// run StragglerFactor × that median. Defaults, for Config's zero values.
const (
	defaultStragglerFactor = 2.0
	defaultStragglerMin    = 3 * time.Second
)

// backupStragglers starts backup copies of straggling parts on idle
// agents: only when no ready step could take the slot instead, and at most
// one backup per part at a time.
func (d *Dispatcher) backupStragglers(ctx context.Context) {
	now := d.cfg.Now()
	d.mu.Lock()
	if !d.active || d.cfg.StragglerFactor < 0 {
		d.mu.Unlock()
		return
	}
	views, free := d.freeViews()
	if free == 0 || len(d.ready.candidates(now.UnixMilli(), 1, supportedBy(views))) > 0 {
		d.mu.Unlock()
		return
	}
	// The parts that have run long enough to be considered, by task.
	minimum := d.cfg.StragglerMin
	byTask := map[string][]*lease{}
	for id, l := range d.leases {
		if l.part != nil && !l.releasing && !l.backingUp && d.backups[id] == nil &&
			now.Sub(l.offeredAt) >= minimum {
			byTask[l.taskID] = append(byTask[l.taskID], l)
		}
	}
	var ups []state.StepUpdate
	var started []*lease
	for taskID, ls := range byTask {
		t, ok := d.cfg.Store.State().TaskRecord(taskID)
		if !ok || t.Status.Finished() {
			continue
		}
		for _, l := range ls {
			i, k := unitIndex(t, l.stepID)
			if k < 0 {
				continue
			}
			p := t.Steps[i].Parts[k]
			if p.Status != api.StepProcessing || p.Attempt != l.attempt || p.Backup != nil {
				continue
			}
			if !d.straggles(t.Steps[i].Parts, l, now) {
				continue
			}
			r := readyOf(t, i, k)
			node := -1
			for j := range views {
				if views[j].Free <= 0 || views[j].Name == l.node || !views[j].Parts {
					continue
				}
				if _, ok := fits(&views[j], r); ok && (node < 0 || views[j].Running < views[node].Running) {
					node = j
				}
			}
			if node < 0 {
				continue
			}
			views[node].Free--
			views[node].Running++
			l.backingUp = true
			started = append(started, l)
			ups = append(ups, state.StepUpdate{Op: state.OpBackup, TaskID: t.ID, StepID: p.ID, Attempt: r.Attempt + 1,
				Node: views[node].Name, Now: now.UnixMilli()})
			d.log.Info("part straggles: starting a backup copy", append(taskAttrs(t.ID, p.ID, l.node),
				"attempt", l.attempt, "running_seconds", now.Sub(l.offeredAt).Seconds(), "progress", l.progress.Progress,
				"backup_node", views[node].Name)...)
		}
	}
	d.mu.Unlock()
	if len(ups) == 0 {
		return
	}
	_, err := d.cfg.Store.StepUpdates(ctx, ups)
	d.mu.Lock()
	for _, l := range started {
		l.backingUp = false // applied (the backup is in d.backups) or not: asked again next pass
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("commit backup copies", "err", err, "count", len(ups))
	}
}

// straggles reports whether a part, run by lease l, is a straggler among
// its step's parts. The sound's part is judged by the picture's: encoding
// the whole track costs about what a part of the picture does. Callers
// hold d.mu.
func (d *Dispatcher) straggles(parts []api.Part, l *lease, now time.Time) bool {
	var done []time.Duration
	total := 0
	for _, o := range parts {
		total++
		switch o.Status {
		case api.StepWaiting, api.StepQueued:
			return false // work not yet begun takes idle agents first
		case api.StepCompleted:
			if o.StartedAt != nil && o.FinishedAt != nil {
				done = append(done, time.Duration(*o.FinishedAt-*o.StartedAt)*time.Millisecond)
			}
		}
	}
	if len(done) == 0 || 2*len(done) < total {
		return false // most parts are not done yet: no median to judge by
	}
	slices.Sort(done)
	median := done[len(done)/2]
	ran := now.Sub(l.offeredAt)
	if ran < d.cfg.StragglerMin {
		return false
	}
	// A copy that reports progress is judged by when it will be done: a
	// backup when a fresh copy, taking the median, would be done well
	// before it. One that reports none yet, or has stopped, by how long it
	// has run.
	if pr := l.progress.Progress; pr > 0 && pr < 1 && now.Sub(l.progressAt) < 3*d.progressEvery(len(d.nodes)) {
		left := time.Duration(float64(ran) * (1 - pr) / pr)
		return left > median*5/4
	}
	return ran >= time.Duration(d.cfg.StragglerFactor*float64(median))
}
