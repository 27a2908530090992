package test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// TestReliabilityListed: `make reliability` reruns the tests named in the
// Makefile's FAULT_TESTS, and each writes its own section of
// RELIABILITY.md. Every section named after a test must be one of them
// (or its figures would go stale: TestAgentDrain's did), and every name
// there a test of this package (`go test -run` passes when a name
// matches nothing).
func TestReliabilityListed(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for line := range strings.Lines(string(mk)) {
		if v, ok := strings.CutPrefix(line, "FAULT_TESTS :="); ok {
			listed = strings.Split(strings.TrimSpace(v), "|")
		}
	}
	if len(listed) == 0 {
		t.Fatal("the Makefile has no FAULT_TESTS line")
	}
	var src strings.Builder
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, name := range listed {
		if !strings.Contains(src.String(), "\nfunc "+name+"(t *testing.T) {") {
			t.Errorf("FAULT_TESTS names %s, which is no test of this package", name)
		}
	}
	rel, err := os.ReadFile("../RELIABILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := 0
	for line := range strings.Lines(string(rel)) {
		name, _, ok := strings.Cut(strings.TrimPrefix(line, "## "), ":")
		if !strings.HasPrefix(line, "## Test") || !ok {
			continue
		}
		sections++
		if !slices.Contains(listed, name) {
			t.Errorf("RELIABILITY.md has a section of %s, which make reliability does not rerun: add it to FAULT_TESTS", name)
		}
	}
	if sections == 0 {
		t.Error("RELIABILITY.md has no section named after a test")
	}
}

// TestFuzzTargetsListed: RELIABILITY.md's table of fuzz targets names
// every fuzz target of the module, each in its package, and nothing else
// (it once named a target that had moved and was no longer fuzzed).
func TestFuzzTargetsListed(t *testing.T) {
	targets := map[string]string{} // "FuzzX (`dir`)", as the table names it
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(b)) {
			rest, ok := strings.CutPrefix(line, "func Fuzz")
			if !ok || !strings.Contains(rest, "(f *testing.F)") {
				continue
			}
			name := "Fuzz" + rest[:strings.Index(rest, "(")]
			dir, _ := filepath.Rel("..", filepath.Dir(path))
			targets[name+" (`"+filepath.ToSlash(dir)+"`)"] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		t.Fatal("no fuzz targets found")
	}
	rel, err := os.ReadFile("../RELIABILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for line := range strings.Lines(string(rel)) {
		// | `FuzzX` (`dir`) | what it checks | …
		cell, ok := strings.CutPrefix(line, "| `Fuzz")
		if !ok {
			continue
		}
		name, dir, ok := strings.Cut(cell, "` (`")
		if !ok {
			t.Errorf("RELIABILITY.md: a fuzz row without its package: %s", strings.TrimSpace(line))
			continue
		}
		dir, _, _ = strings.Cut(dir, "`)")
		rows["Fuzz"+name+" (`"+dir+"`)"] = true
	}
	for k, path := range targets {
		if !rows[k] {
			t.Errorf("RELIABILITY.md's fuzz table has no row for %s (%s)", k, path)
		}
	}
	for k := range rows {
		if targets[k] == "" {
			t.Errorf("RELIABILITY.md's fuzz table has a row for %s, which is no fuzz target of the module", k)
		}
	}
}
