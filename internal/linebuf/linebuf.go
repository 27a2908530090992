// Package linebuf writes the log lines of a burst at once: between Hold and
// Release, lines gather in memory and Release writes them with one call,
// so that the hundreds of lines a batch of work logs cost one system call
// rather than one each. Bursts that follow each other closely share a
// write: a Release within minGap of the last write leaves its lines to be
// written at the end of the gap. Outside a hold every line is written as
// it comes (after any lines still gathered).
package linebuf

import (
	"io"
	"sync"
	"time"
)

// maxHeld is how many bytes a hold gathers before writing them anyway.
const maxHeld = 64 << 10

// minGap is the least time between two writes of gathered lines. A
// server under load applies an entry of new tasks every few
// milliseconds, and wrote each entry's lines at once: a system call of
// about 18 µs each time (measured on the benchmark's host), a microsecond
// of each create's cost on the leader.
const minGap = 10 * time.Millisecond

// Writer passes lines through to the writer it wraps, or gathers them
// while held. It is safe for concurrent use; lines keep their order.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	held    int
	buf     []byte
	err     error     // of the last write of gathered lines, for the next Write
	last    time.Time // of the last write of gathered lines
	pending bool      // a timer will write the gathered lines
}

// New wraps w.
func New(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Write writes p, or gathers it while the writer is held.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == 0 && len(w.buf) == 0 {
		return w.w.Write(p)
	}
	if w.held == 0 {
		// After the lines gathered before it, in one write.
		w.buf = append(w.buf, p...)
		w.flushLocked()
		if err := w.err; err != nil {
			w.err = nil
			return 0, err
		}
		return len(p), nil
	}
	if err := w.err; err != nil {
		w.err = nil
		return 0, err
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= maxHeld {
		w.flushLocked()
	}
	return len(p), nil
}

// Hold gathers the lines written from now until the matching Release.
// Holds nest.
func (w *Writer) Hold() {
	w.mu.Lock()
	w.held++
	w.mu.Unlock()
}

// Release ends a Hold; the last one writes what was gathered, at once or,
// within minGap of the last write, at the end of the gap.
func (w *Writer) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == 0 {
		panic("linebuf: Release without Hold")
	}
	w.held--
	if w.held > 0 || len(w.buf) == 0 {
		return
	}
	wait := minGap - time.Since(w.last)
	if wait <= 0 {
		w.flushLocked()
		return
	}
	if !w.pending {
		w.pending = true
		time.AfterFunc(wait, w.flushLater)
	}
}

// flushLater writes the gathered lines at the end of a gap, unless a hold
// has begun (its Release writes them).
func (w *Writer) flushLater() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = false
	if w.held == 0 {
		w.flushLocked()
	}
}

// Flush writes the lines gathered and not yet written (before the
// process exits).
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = err
	}
	w.last = time.Now()
	w.buf = w.buf[:0]
	if cap(w.buf) > 4*maxHeld {
		w.buf = nil // a burst larger than usual: let it go
	}
}
