// Package logshape writes many log lines of one shape — the same time,
// level, message and attributes but for a few string values — exactly as a
// slog handler writes each, for about the cost of one: the line is rendered
// once through the handler with a marker in place of each value, and each
// line is that render with its own values put where the markers were.
//
// A server under load logs a "task queued" line for every task it creates,
// hundreds in a batch; through slog each line cost about a microsecond of
// the leader's CPU (attributes formatted and escaped one by one), a line
// made from its shape a tenth of that.
package logshape

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
)

// Var returns the marker for value i of a shape: the string value to give
// the attribute that line i's value will take the place of. Markers hold
// only letters and digits, which every slog handler writes as they are.
func Var(i int) string {
	if i < len(markers) {
		return markers[i]
	}
	return marker(i)
}

// markers are the first few markers, made once: a shape is rendered for
// every batch of lines.
var markers = func() (m [8]string) {
	for i := range m {
		m[i] = marker(i)
	}
	return m
}()

func marker(i int) string { return fmt.Sprintf("ittybitLogshapeVar%dEnd", i) }

// Shape is a rendered line cut where its values go. Its zero value is
// ready to Render into.
type Shape struct {
	line []byte   // the render, less the markers
	cuts [][]byte // len(values)+1 pieces of line; the values go between them
}

// Render renders r into s through h, a handler that writes each record to
// buf, whose string attributes Var(0) … Var(n-1) mark where n values go.
// It reports false when the line cannot be cut: the handler did not write
// each marker exactly once, in order. The shape keeps its own copy of the
// line (buf may be reused), in the memory of its last render.
func (s *Shape) Render(h slog.Handler, buf *bytes.Buffer, r slog.Record, n int) bool {
	s.line, s.cuts = s.line[:0], s.cuts[:0]
	buf.Reset()
	if err := h.Handle(context.Background(), r); err != nil {
		return false
	}
	rest := buf.Bytes()
	var at []int // where each piece ends in line
	for i := range n {
		m := Var(i)
		k := bytes.Index(rest, []byte(m))
		if k < 0 || bytes.Contains(rest[k+len(m):], []byte(m)) {
			return false
		}
		s.line = append(s.line, rest[:k]...)
		at = append(at, len(s.line))
		rest = rest[k+len(m):]
	}
	s.line = append(s.line, rest...)
	start := 0
	for _, end := range append(at, len(s.line)) {
		s.cuts = append(s.cuts, s.line[start:end:end])
		start = end
	}
	return true
}

// Append appends the line with values in place of the markers, one value
// per marker. It appends nothing and reports false when a value is not
// plain (plain: not empty, and only letters, digits and "_.:-"), which
// some handler would quote or escape: log that line through slog instead.
func (s *Shape) Append(b []byte, values ...string) ([]byte, bool) {
	if len(s.cuts) == 0 || len(values) != len(s.cuts)-1 {
		return b, false
	}
	for _, v := range values {
		if !plain(v) {
			return b, false
		}
	}
	for i, v := range values {
		b = append(b, s.cuts[i]...)
		b = append(b, v...)
	}
	return append(b, s.cuts[len(values)]...), true
}

// plain reports whether every handler writes v as it is: JSON without
// escapes, text without quotes.
func plain(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
