package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// report gathers the figures of a run.
type report struct {
	started, finished time.Time
	machine           string
	ffmpeg            string
	sections          []*section
}

// section is one benchmark's results: rows of figures beside anchors, a
// verdict on its target, and notes.
type section struct {
	title  string
	intro  string
	header []string
	rows   [][]string
	target string
	met    *bool
	notes  []string
}

func (r *report) add(s *section) { r.sections = append(r.sections, s) }

func verdict(ok bool) *bool { return &ok }

// table renders the sections for a terminal.
func (r *report) table() string {
	var b strings.Builder
	for _, s := range r.sections {
		fmt.Fprintf(&b, "\n%s\n", s.title)
		widths := make([]int, len(s.header))
		for i, h := range s.header {
			widths[i] = len(h)
		}
		for _, row := range s.rows {
			for i, c := range row {
				widths[i] = max(widths[i], len(c))
			}
		}
		line := func(cells []string) {
			for i, c := range cells {
				fmt.Fprintf(&b, "  %-*s", widths[i], c)
			}
			b.WriteString("\n")
		}
		line(s.header)
		for _, row := range s.rows {
			line(row)
		}
		if s.target != "" {
			fmt.Fprintf(&b, "  target: %s — %s\n", s.target, met(s.met))
		}
	}
	return b.String()
}

func met(m *bool) string {
	switch {
	case m == nil:
		return "not judged"
	case *m:
		return "met"
	}
	return "NOT met"
}

// markdown renders BENCHMARKS.md.
func (r *report) markdown(cmdline string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `make bench` (`go run ./test/bench`); every figure below comes from one run, ")
	b.WriteString("each beside the anchor measured in the same run. Regenerate with `make bench`; a subset with ")
	b.WriteString("`go run ./test/bench -only overhead,dispatch` (a subset prints; with `-update` it replaces its own sections here, each marked as rerun).\n\n")
	fmt.Fprintf(&b, "- Machine: %s\n", r.machine)
	fmt.Fprintf(&b, "- ffmpeg: %s\n", r.ffmpeg)
	fmt.Fprintf(&b, "- Run: %s, %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(&b, "- Command: `%s`\n\n", cmdline)
	b.WriteString("| benchmark | target | result |\n|---|---|---|\n")
	for _, s := range r.sections {
		if s.target != "" {
			b.WriteString(s.summaryRow())
		}
	}
	for _, s := range r.sections {
		b.WriteString(s.markdown(""))
	}
	return b.String()
}

// summaryRow is a section's line in the table at the top of BENCHMARKS.md.
func (s *section) summaryRow() string {
	return fmt.Sprintf("| %s | %s | %s |\n", s.title, s.target, met(s.met))
}

// markdown renders one section, with rerun (when not "") said first.
func (s *section) markdown(rerun string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s\n\n", s.title)
	if rerun != "" {
		b.WriteString(rerun + "\n\n")
	}
	if s.intro != "" {
		b.WriteString(s.intro + "\n\n")
	}
	b.WriteString("| " + strings.Join(s.header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(s.header)) + "\n")
	for _, row := range s.rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	if s.target != "" {
		fmt.Fprintf(&b, "\nTarget: %s — **%s**.\n", s.target, met(s.met))
	}
	for _, n := range s.notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}

// update replaces, in an existing BENCHMARKS.md, the sections this run
// measured (and their lines in the table at the top), each saying that it
// was rerun on its own and when; sections it does not have are added at
// the end. The rest of the file is left as the full run wrote it.
func (r *report) update(old, cmdline string) string {
	rerun := fmt.Sprintf("*Rerun on its own on %s (%s, `%s`; machine: %s); the other sections are from the full run named at the top.*",
		r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second), cmdline, r.machine)
	head, body, _ := strings.Cut(old, "\n## ")
	body = "\n## " + body
	for _, s := range r.sections {
		// The section: from its heading to the next one.
		start := strings.Index(body, "\n## "+s.title+"\n")
		if start < 0 {
			body += s.markdown(rerun)
		} else {
			end := len(body)
			if next := strings.Index(body[start+1:], "\n## "); next >= 0 {
				end = start + 1 + next
			}
			body = body[:start] + s.markdown(rerun) + body[end:]
		}
		if s.target == "" {
			continue
		}
		// Its line in the table at the top.
		lines := strings.SplitAfter(head, "\n")
		at, last := -1, -1
		for i, l := range lines {
			if strings.HasPrefix(l, "| "+s.title+" |") {
				at = i
			}
			if strings.HasPrefix(l, "| ") {
				last = i
			}
		}
		switch {
		case at >= 0:
			lines[at] = s.summaryRow()
		case last >= 0:
			lines = append(lines[:last+1], append([]string{s.summaryRow()}, lines[last+1:]...)...)
		}
		head = strings.Join(lines, "")
	}
	return head + body
}

// Statistics.

func median(xs []float64) float64 { return quantile(xs, 0.5) }

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[lo]
	}
	frac := pos - float64(lo)
	return s[lo]*(1-frac) + s[lo+1]*frac
}

func secs(d time.Duration) float64 { return d.Seconds() }

func f2(x float64) string { return fmt.Sprintf("%.2f", x) }
func f3(x float64) string { return fmt.Sprintf("%.3f", x) }
func f1(x float64) string { return fmt.Sprintf("%.1f", x) }
func f0(x float64) string { return fmt.Sprintf("%.0f", x) }
