package logshape

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// handlers are the handlers a server logs through, made to write to w.
var handlers = map[string]func(w *bytes.Buffer) slog.Handler{
	"json": func(w *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	"text": func(w *bytes.Buffer) slog.Handler { return slog.NewTextHandler(w, nil) },
	"json with attrs and a group": func(w *bytes.Buffer) slog.Handler {
		return slog.NewJSONHandler(w, nil).WithAttrs([]slog.Attr{slog.String("component", "scheduler")}).WithGroup("g")
	},
	"text with attrs": func(w *bytes.Buffer) slog.Handler {
		return slog.NewTextHandler(w, nil).WithAttrs([]slog.Attr{slog.String("component", "scheduler")})
	},
}

func record(at time.Time, task, step, kind string) slog.Record {
	r := slog.NewRecord(at, slog.LevelInfo, "task queued", 0)
	r.AddAttrs(slog.String("task_id", task), slog.String("step_id", step), slog.String("node_id", ""), slog.String("kind", kind))
	return r
}

// TestLinesAsTheHandlerWritesThem: each line made from the shape is,
// byte for byte, the line the handler writes for the same record.
func TestLinesAsTheHandlerWritesThem(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 123456789, time.UTC)
	values := [][3]string{
		{"task_01kbk3c0ab8x6w0g5s1rdw2hxm", "step_01kbk3c0ab8x6w0g5s1rdw2hxn", "video"},
		{"task_a", "step_a.p0", "adaptive_video"},
		{"t:1", "s-2", "image"},
	}
	for name, newHandler := range handlers {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			h := newHandler(&buf)
			var shape Shape
			if ok := shape.Render(h, &buf, record(at, Var(0), Var(1), Var(2)), 3); !ok {
				t.Fatalf("the line of %q could not be cut", buf.String())
			}
			var got, want []byte
			var ok bool
			for _, v := range values {
				if got, ok = shape.Append(got, v[0], v[1], v[2]); !ok {
					t.Fatalf("values %q refused", v)
				}
				buf.Reset()
				if err := h.Handle(context.Background(), record(at, v[0], v[1], v[2])); err != nil {
					t.Fatal(err)
				}
				want = append(want, buf.Bytes()...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("lines from the shape:\n%s\nthe handler's:\n%s", got, want)
			}
		})
	}
}

// TestValuesNotPlainRefused: a value some handler would quote or escape
// is refused, and nothing is appended for its line.
func TestValuesNotPlainRefused(t *testing.T) {
	var buf bytes.Buffer
	var shape Shape
	if !shape.Render(slog.NewJSONHandler(&buf, nil), &buf, record(time.Now(), Var(0), Var(1), Var(2)), 3) {
		t.Fatal("the line could not be cut")
	}
	for _, v := range []string{"", "a b", `a"b`, "a=b", `a\b`, "a\nb", "é", "<a>", "a&b"} {
		if b, ok := shape.Append([]byte("before"), "task_a", v, "video"); ok || string(b) != "before" {
			t.Errorf("value %q: appended %q (%v), want it refused", v, b, ok)
		}
	}
	if _, ok := shape.Append(nil, "task_a", "step_a"); ok {
		t.Error("two values for three markers were taken")
	}
}

// TestShapeNotCut: a handler that does not write each marker once, as
// given, makes no shape.
func TestShapeNotCut(t *testing.T) {
	var buf bytes.Buffer
	dropping := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == "step_id" {
			return slog.Attr{}
		}
		return a
	}})
	var shape Shape
	if shape.Render(dropping, &buf, record(time.Now(), Var(0), Var(1), Var(2)), 3) {
		t.Error("a line without one of its markers was cut")
	}
	twice := slog.NewJSONHandler(&buf, nil).WithAttrs([]slog.Attr{slog.String("again", Var(0))})
	if shape.Render(twice, &buf, record(time.Now(), Var(0), Var(1), Var(2)), 3) {
		t.Error("a line with a marker twice was cut")
	}
	if shape.Render(slog.NewJSONHandler(&buf, nil), &buf, record(time.Now(), Var(1), Var(0), Var(2)), 3) {
		t.Error("a line with its markers out of order was cut")
	}
	if _, ok := shape.Append(nil, "task_a", "step_a", "video"); ok {
		t.Error("a shape whose render failed took values")
	}
}

func BenchmarkQueuedLine(b *testing.B) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil).WithAttrs([]slog.Attr{slog.String("component", "scheduler")})
	at := time.Now()
	b.Run("slog", func(b *testing.B) {
		for range b.N {
			buf.Reset()
			_ = h.Handle(context.Background(), record(at, "task_01kbk3c0ab8x6w0g5s1rdw2hxm", "step_01kbk3c0ab8x6w0g5s1rdw2hxn", "video"))
		}
	})
	b.Run("shape", func(b *testing.B) {
		var shape Shape
		shape.Render(h, &buf, record(at, Var(0), Var(1), Var(2)), 3)
		var out []byte
		for range b.N {
			out, _ = shape.Append(out[:0], "task_01kbk3c0ab8x6w0g5s1rdw2hxm", "step_01kbk3c0ab8x6w0g5s1rdw2hxn", "video")
		}
	})
}

func BenchmarkRender(b *testing.B) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil).WithAttrs([]slog.Attr{slog.String("component", "scheduler")})
	var shape Shape
	for range b.N {
		shape.Render(h, &buf, record(time.Now(), Var(0), Var(1), Var(2)), 3)
	}
}
