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

// serverLog is the server's log: its logger, which writes through lines, a
// writer that can gather a burst of lines into one write (the scheduler
// logs a line per task it queues, and a batch of creates queues hundreds
// at once), and handlerTo, which makes a handler that writes to another
// writer as the logger's does (scheduler.Config.LogHandler).
type serverLog struct {
	logger    *slog.Logger
	lines     *linebuf.Writer
	handlerTo func(io.Writer) slog.Handler
}

// newServerLog is newLogger through a linebuf.Writer.
func newServerLog(w io.Writer, level slog.Level) serverLog {
	lines := linebuf.New(w)
	return serverLog{
		logger:    loggerTo(w, lines, level),
		lines:     lines,
		handlerTo: func(out io.Writer) slog.Handler { return handlerTo(w, out, level) },
	}
}

// loggerTo is a logger through handlerTo.
func loggerTo(w, out io.Writer, level slog.Level) *slog.Logger {
	return slog.New(handlerTo(w, out, level))
}

// handlerTo is a handler that writes to out at level: text when w, the
// log's destination, is a terminal, and JSON otherwise.
func handlerTo(w, out io.Writer, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.NewTextHandler(out, opts)
	}
	return slog.NewJSONHandler(out, opts)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}
