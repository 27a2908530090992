package test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// figures are one fault test's measurements, written into RELIABILITY.md
// as a table under its heading with -update.
type figures struct {
	heading string // "## TestX: what it does"
	intro   string // how the test runs, one paragraph
	rows    [][2]string
}

func (f *figures) add(name string, format string, args ...any) {
	f.rows = append(f.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

// write replaces the test's section of ../RELIABILITY.md, when the test
// passed and -update is set; it logs the figures either way.
func (f *figures) write(tb testing.TB) {
	tb.Helper()
	for _, r := range f.rows {
		tb.Logf("%s: %s", r[0], r[1])
	}
	if !*updateReliability {
		return
	}
	if tb.Failed() {
		tb.Log("not writing RELIABILITY.md: the test failed")
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n\n| figure | value |\n|---|---|\n", f.heading, f.intro)
	rows := append([][2]string{
		{"when", time.Now().UTC().Format("2006-01-02")},
		{"machine", fmt.Sprintf("%s/%s, %d CPUs; binary and test built with -race: %v", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), raceEnabled)},
	}, f.rows...)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
	}
	updateSection(tb, "../RELIABILITY.md", f.heading, b.String())
}

// seconds formats a duration for the figures.
func seconds(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
