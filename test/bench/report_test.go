package main

import (
	"strings"
	"testing"
	"time"
)

// TestUpdate: a subset run with -update replaces its own sections and
// their lines at the top, adds the ones the file lacks, and leaves the
// rest as the full run wrote it.
func TestUpdate(t *testing.T) {
	ok, bad := true, false
	full := &report{started: time.Unix(0, 0), finished: time.Unix(60, 0), machine: "m", ffmpeg: "f"}
	full.add(&section{title: "1. One", header: []string{"a"}, rows: [][]string{{"old one"}}, target: "t1", met: &ok})
	full.add(&section{title: "2. Two", header: []string{"a"}, rows: [][]string{{"old two"}}, target: "t2", met: &bad})
	full.add(&section{title: "3. Three", header: []string{"a"}, rows: [][]string{{"old three"}}})
	old := full.markdown("go run ./test/bench")

	sub := &report{started: time.Unix(3600, 0), finished: time.Unix(3700, 0)}
	sub.add(&section{title: "2. Two", header: []string{"a"}, rows: [][]string{{"new two"}}, target: "t2", met: &ok})
	sub.add(&section{title: "4. Four", header: []string{"a"}, rows: [][]string{{"new four"}}, target: "t4", met: &ok})
	got := sub.update(old, "go run ./test/bench -only two,four -update")

	for _, want := range []string{"| old one |", "| new two |", "| old three |", "| new four |", "| 2. Two | t2 | met |", "| 4. Four | t4 | met |", "| 1. One | t1 | met |", "Rerun on its own on 1970-01-01 01:00 UTC"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	for _, gone := range []string{"old two", "| 2. Two | t2 | NOT met |"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q still there:\n%s", gone, got)
		}
	}
	if strings.Index(got, "## 3. Three") > strings.Index(got, "## 4. Four") || strings.Count(got, "## 2. Two") != 1 {
		t.Errorf("sections out of order or repeated:\n%s", got)
	}
	if strings.Index(got, "| 4. Four |") > strings.Index(got, "\n## ") {
		t.Errorf("the new line is not in the table at the top:\n%s", got)
	}
}
