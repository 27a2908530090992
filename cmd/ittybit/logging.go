package main

import (
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"

	"github.com/ittybit-oss/ittybit/internal/linebuf"
)

// newLogger logs text on a terminal and JSON otherwise (to files,
// journald, log shippers).
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return loggerTo(w, w, level)
}

// newServerLogger is newLogger through a writer that can gather a burst of
// lines into one write: the scheduler logs a line per task it queues, and
// a batch of creates queues hundreds at once.
func newServerLogger(w io.Writer, level slog.Level) (*slog.Logger, *linebuf.Writer) {
	lines := linebuf.New(w)
	return loggerTo(w, lines, level), lines
}

// loggerTo writes to out, as text when w is a terminal.
func loggerTo(w, out io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}
