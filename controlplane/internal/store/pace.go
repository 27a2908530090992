package store

import (
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Snapshot pacing. Raft takes a snapshot once the log has grown by
// SnapshotThreshold entries since the last one (it checks every two to
// four minutes). A snapshot writes the whole state, so at a fixed
// threshold what snapshots cost a write grows with the state: with
// 700,000 tasks queued, one is 2 GB and seconds of CPU, taken every few
// minutes under load.
//
// Unless a threshold is configured, the store paces snapshots to the
// state instead: after a snapshot of S bytes, the next one waits until
// the log has grown by about S/2 bytes (in entries of the mean size
// applied before it), and never for fewer than Raft's 8,192 entries.
// So a snapshot costs about the same per write whatever the state's
// size, a restart replays at most about half a snapshot's bytes of log
// after restoring it, and a small state snapshots as often as before.

const (
	// paceLeast and paceMost bound the threshold the pace sets.
	paceLeast = 8192
	paceMost  = 1 << 22
)

// snapshotPace counts what the state machine applied since the last
// snapshot began, and sets Raft's threshold after each snapshot.
type snapshotPace struct {
	bytes, entries atomic.Uint64
	raft           atomic.Pointer[raft.Raft]
	log            *slog.Logger
	// lastSize is the size of the last snapshot written.
	lastSize atomic.Uint64
}

// applied counts one command of n bytes.
func (p *snapshotPace) applied(n int) {
	p.bytes.Add(uint64(n))
	p.entries.Add(1)
}

// take returns what was applied since the last call, and starts over.
func (p *snapshotPace) take() (bytes, entries uint64) {
	return p.bytes.Swap(0), p.entries.Swap(0)
}

// paceThreshold is the number of entries to wait for after a snapshot of
// size bytes, when entries commands of bytes bytes in all came before it.
func paceThreshold(size, bytes, entries uint64) uint64 {
	if bytes == 0 || entries == 0 {
		return paceLeast
	}
	mean := max(bytes/entries, 1)
	return min(max(size/2/mean, paceLeast), paceMost)
}

// persisted sets Raft's threshold after a snapshot of size bytes.
func (p *snapshotPace) persisted(size, bytes, entries uint64) {
	p.lastSize.Store(size)
	r := p.raft.Load()
	if r == nil {
		return
	}
	rc := r.ReloadableConfig()
	next := paceThreshold(size, bytes, entries)
	if rc.SnapshotThreshold != next {
		rc.SnapshotThreshold = next
		if err := r.ReloadConfig(rc); err != nil {
			p.log.Warn("snapshot pace not set", "err", err)
			next = r.ReloadableConfig().SnapshotThreshold
		}
	}
	p.log.Info("snapshot written", "bytes", size, "next_after_entries", next)
}
