// Package linebuf writes the log lines of a burst at once: between Hold and
// Release, lines gather in memory and Release writes them with one call,
// so that the hundreds of lines a batch of work logs cost one system call
// rather than one each. Outside a hold every line is written as it comes.
package linebuf

import (
	"io"
	"sync"
)

// maxHeld is how many bytes a hold gathers before writing them anyway.
const maxHeld = 64 << 10

// Writer passes lines through to the writer it wraps, or gathers them
// while held. It is safe for concurrent use; lines keep their order.
type Writer struct {
	mu   sync.Mutex
	w    io.Writer
	held int
	buf  []byte
	err  error // of the last write of gathered lines, for the next Write
}

// New wraps w.
func New(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Write writes p, or gathers it while the writer is held.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == 0 {
		return w.w.Write(p)
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

// Release ends a Hold; the last one writes what was gathered.
func (w *Writer) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == 0 {
		panic("linebuf: Release without Hold")
	}
	w.held--
	if w.held == 0 {
		w.flushLocked()
	}
}

func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = err
	}
	w.buf = w.buf[:0]
	if cap(w.buf) > 4*maxHeld {
		w.buf = nil // a burst larger than usual: let it go
	}
}
