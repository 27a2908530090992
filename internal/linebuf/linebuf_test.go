package linebuf

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records each call to Write.
type countingWriter struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestPassesThroughWhenNotHeld(t *testing.T) {
	c := &countingWriter{}
	w := New(c)
	fmt.Fprintln(w, "one")
	fmt.Fprintln(w, "two")
	if got := c.writes; len(got) != 2 || got[0] != "one\n" || got[1] != "two\n" {
		t.Fatalf("writes = %q, want each line as it came", got)
	}
}

func TestHoldGathersUntilLastRelease(t *testing.T) {
	c := &countingWriter{}
	w := New(c)
	w.Hold()
	fmt.Fprintln(w, "a")
	w.Hold() // nested
	fmt.Fprintln(w, "b")
	w.Release()
	if len(c.writes) != 0 {
		t.Fatalf("wrote %q before the outer Release", c.writes)
	}
	fmt.Fprintln(w, "c")
	w.Release()
	if got := c.writes; len(got) != 1 || got[0] != "a\nb\nc\n" {
		t.Fatalf("writes = %q, want one write of the three lines in order", got)
	}
	fmt.Fprintln(w, "d")
	if got := c.writes; len(got) != 2 || got[1] != "d\n" {
		t.Fatalf("after the hold, writes = %q, want d written at once", got)
	}
}

func TestLargeHoldWritesAsItGoes(t *testing.T) {
	c := &countingWriter{}
	w := New(c)
	line := strings.Repeat("x", 1023) + "\n"
	w.Hold()
	for range 3 * maxHeld / len(line) {
		w.Write([]byte(line))
	}
	if len(c.writes) < 2 {
		t.Fatalf("a hold of %d bytes made %d writes, want it written in pieces of about %d", 3*maxHeld, len(c.writes), maxHeld)
	}
	w.Release()
	var all bytes.Buffer
	for _, s := range c.writes {
		all.WriteString(s)
	}
	if all.Len() != 3*maxHeld/len(line)*len(line) {
		t.Fatalf("wrote %d bytes, want %d", all.Len(), 3*maxHeld/len(line)*len(line))
	}
}

func TestGatheredWriteErrorReported(t *testing.T) {
	c := &countingWriter{err: errors.New("disk full")}
	w := New(c)
	w.Hold()
	if _, err := w.Write([]byte("a\n")); err != nil {
		t.Fatalf("a held line failed at once: %v", err)
	}
	w.Release() // the write fails here
	w.Hold()
	if _, err := w.Write([]byte("b\n")); err == nil || err.Error() != "disk full" {
		t.Fatalf("the next held Write got %v, want the failed write's error", err)
	}
	w.Release()
}

func TestConcurrentLinesKeepWhole(t *testing.T) {
	c := &countingWriter{}
	w := New(c)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if i%10 == 0 {
					w.Hold()
					defer w.Release()
				}
				fmt.Fprintf(w, "g%d-%d\n", g, i)
			}
		}()
	}
	wg.Wait()
	w.Flush() // the last bursts may wait for the end of a gap
	var all strings.Builder
	for _, s := range c.writes {
		all.WriteString(s)
	}
	lines := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("got %d lines, want %d", len(lines), 8*200)
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d-%d", &g, &i); err != nil {
			t.Fatalf("line %q torn", l)
		}
		k := fmt.Sprint(g)
		if i != next[k] {
			t.Fatalf("goroutine %d: line %d came after %d", g, i, next[k]-1)
		}
		next[k]++
	}
}

// burst writes line in a hold of its own.
func burst(w *Writer, line string) {
	w.Hold()
	fmt.Fprintln(w, line)
	w.Release()
}

// written returns what c has been given so far.
func (c *countingWriter) written() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.writes...)
}

func TestCloseBurstsShareAWrite(t *testing.T) {
	c := &countingWriter{}
	w := New(c)
	burst(w, "a") // the first: written at once
	burst(w, "b") // within the gap: left for the timer
	burst(w, "c")
	if got := c.written(); len(got) != 1 || got[0] != "a\n" {
		t.Fatalf("writes = %q, want only the first burst written at once", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.written()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := c.written(); len(got) != 2 || got[1] != "b\nc\n" {
		t.Fatalf("writes = %q, want the later bursts in one write at the end of the gap", got)
	}
}

func TestLineAfterGatheredKeepsOrder(t *testing.T) {
	c := &countingWriter{}
	w := New(c)
	burst(w, "a")
	burst(w, "b")        // gathered, not yet written
	fmt.Fprintln(w, "x") // outside a hold: after b, at once
	if got := c.written(); len(got) != 2 || got[1] != "b\nx\n" {
		t.Fatalf("writes = %q, want b and x in one write, in order", got)
	}
	burst(w, "c")
	w.Flush()
	if got := c.written(); len(got) != 3 || got[2] != "c\n" {
		t.Fatalf("writes = %q, want Flush to write what was gathered", got)
	}
	time.Sleep(2 * minGap) // the timer finds nothing left
	if got := c.written(); len(got) != 3 {
		t.Fatalf("writes = %q after the gap, want nothing more", got)
	}
}
