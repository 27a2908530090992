package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// progressDisplay shows a task's progress: a bar on a terminal, a line per
// tenth otherwise.
type progressDisplay struct {
	w     io.Writer
	tty   bool
	quiet bool
	step  string
	bar   *progressbar.ProgressBar
	tenth int
}

func newProgressDisplay(w io.Writer, quiet bool) *progressDisplay {
	d := &progressDisplay{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		d.tty = true
	}
	return d
}

func (d *progressDisplay) update(step string, p encoders.Progress) {
	if d.quiet {
		return
	}
	if step != d.step {
		d.finishBar()
		d.step, d.tenth = step, -1
		label := map[string]string{api.StepProbe: "fetching"}[step]
		if label == "" {
			label = "encoding " + step
		}
		if d.tty {
			d.bar = progressbar.NewOptions(1000,
				progressbar.OptionSetWriter(d.w),
				progressbar.OptionSetDescription(label),
				progressbar.OptionShowElapsedTimeOnFinish(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
				progressbar.OptionThrottle(100_000_000),
			)
		} else {
			fmt.Fprintf(d.w, "%s...\n", label)
		}
	}
	if d.tty && d.bar != nil {
		_ = d.bar.Set(int(p.Fraction * 1000))
		return
	}
	if t := int(p.Fraction * 10); t > d.tenth && step != api.StepProbe {
		d.tenth = t
		extra := ""
		if p.Speed > 0 {
			extra = fmt.Sprintf(" (%.2fx real time)", p.Speed)
		}
		fmt.Fprintf(d.w, "%s %d%%%s\n", step, t*10, extra)
	}
}

func (d *progressDisplay) finishBar() {
	if d.bar != nil {
		_ = d.bar.Finish()
		fmt.Fprintln(d.w)
		d.bar = nil
	}
}

func (d *progressDisplay) done() { d.finishBar() }

// printResult writes what the task made: path, size, dimensions, duration.
func printResult(w io.Writer, t *api.Task) {
	var f encoders.File
	if len(t.Steps) > 0 {
		_ = json.Unmarshal(t.Steps[len(t.Steps)-1].Output, &f)
	}
	var encoder struct {
		Encoder string `json:"encoder"`
	}
	if len(t.Steps) > 2 {
		_ = json.Unmarshal(t.Steps[2].Options, &encoder)
	}
	fmt.Fprintf(w, "%s\n", strings.TrimPrefix(f.URL, "file://"))
	fmt.Fprintf(w, "  %s\n", describe(f, encoder.Encoder))
	for _, r := range f.Renditions {
		fmt.Fprintf(w, "  %s: %s\n", strings.TrimPrefix(r.URL, "file://"), describe(r, ""))
	}
}

func describe(f encoders.File, encoder string) string {
	var parts []string
	what := f.Format
	if f.Codec != "" && f.Codec != f.Format {
		what = f.Codec + " in " + f.Format
	}
	if encoder != "" {
		what += " (" + encoder + ")"
	}
	parts = append(parts, what)
	if f.Width > 0 {
		parts = append(parts, fmt.Sprintf("%dx%d", f.Width, f.Height))
	}
	if f.FPS > 0 {
		parts = append(parts, fmt.Sprintf("%.3g fps", f.FPS))
	}
	if f.Duration > 0 {
		parts = append(parts, fmt.Sprintf("%.3f s", f.Duration))
	}
	if f.Bitrate > 0 {
		parts = append(parts, fmt.Sprintf("%d kbit/s", f.Bitrate/1000))
	}
	parts = append(parts, humanSize(f.Filesize))
	return strings.Join(parts, ", ")
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
