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
	return fmt.Sprintf("ittybitLogshapeVar%dEnd", i)
}

// Shape is a rendered line cut where its values go.
type Shape struct {
	cuts [][]byte // len(values)+1 pieces; the values go between them
}

// Render renders r through h, a handler that writes each record to buf,
// whose string attributes Var(0) … Var(n-1) mark where n values go. It
// reports false when the line cannot be cut: the handler did not write
// each marker exactly once, in order. The shape holds its own copy of the
// line: buf may be reused.
func Render(h slog.Handler, buf *bytes.Buffer, r slog.Record, n int) (Shape, bool) {
	buf.Reset()
	if err := h.Handle(context.Background(), r); err != nil {
		return Shape{}, false
	}
	line := bytes.Clone(buf.Bytes())
	cuts := make([][]byte, 0, n+1)
	for i := range n {
		m := []byte(Var(i))
		at := bytes.Index(line, m)
		if at < 0 || bytes.Contains(line[at+len(m):], m) {
			return Shape{}, false
		}
		cuts = append(cuts, line[:at:at])
		line = line[at+len(m):]
	}
	return Shape{cuts: append(cuts, line)}, true
}

// Append appends the line with values in place of the markers, one value
// per marker. It appends nothing and reports false when a value is not
// plain (plain: not empty, and only letters, digits and "_.:-"), which
// some handler would quote or escape: log that line through slog instead.
func (s Shape) Append(b []byte, values ...string) ([]byte, bool) {
	if len(values) != len(s.cuts)-1 {
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
