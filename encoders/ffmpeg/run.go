package ffmpeg

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Runner starts ffmpeg processes.
type Runner struct {
	// Path is the ffmpeg program; "" means "ffmpeg" on PATH.
	Path string
	// Trace, when set, is called with each command line before it runs.
	Trace func(argv []string)
}

// stderrLimit bounds how much of ffmpeg's stderr is kept for errors.
const stderrLimit = 16 << 10

// Run runs ffmpeg with args, reporting progress against a planned output
// of duration seconds (or frames frames, when the duration is unknown).
// It returns nil on success; ErrCancelled when ctx ended the run;
// ErrInvalidMedia when ffmpeg could not decode the input; ErrEncodeFailed
// otherwise, with ffmpeg's last error lines.
func (r *Runner) Run(ctx context.Context, args []string, duration float64, frames int64, progress func(encoders.Progress)) error {
	_, err := r.RunReport(ctx, args, duration, frames, progress)
	return err
}

// RunReport is Run, and returns what ffmpeg's last progress block said
// of the output it wrote (its -progress output must go to stdout).
func (r *Runner) RunReport(ctx context.Context, args []string, duration float64, frames int64, progress func(encoders.Progress)) (Report, error) {
	cmd, stderr := r.command(ctx, args)
	path := cmd.Args[0]
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Report{}, ittybit.Errorf(ittybit.ErrInternal, "ffmpeg stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return Report{}, ittybit.Errorf(ittybit.ErrInternal, "ffmpeg is not installed (looked for %q on PATH); install it, e.g. apt-get install ffmpeg", path)
		}
		return Report{}, ittybit.Errorf(ittybit.ErrInternal, "start ffmpeg: %v", err)
	}
	parser := &progressParser{duration: duration, frames: frames, size: -1}
	done := make(chan struct{})
	go func() {
		defer close(done)
		parser.feed(stdout, progress)
	}()
	<-done // the pipe closes when ffmpeg exits
	werr := cmd.Wait()
	rep := Report{Frames: parser.cur.Frames, MediaSeconds: parser.cur.MediaSeconds, Size: parser.size, Ended: parser.ended}
	if werr == nil {
		return rep, nil
	}
	if ctx.Err() != nil {
		return rep, ittybit.Errorf(ittybit.ErrCancelled, "encode cancelled")
	}
	return rep, classify(hidePaths(stderr.String(), args), werr)
}

// command prepares ffmpeg with args in a process group of its own, killed
// whole when ctx ends, keeping the tail of its stderr.
func (r *Runner) command(ctx context.Context, args []string) (*exec.Cmd, *tailBuffer) {
	path := r.Path
	if path == "" {
		path = "ffmpeg"
	}
	if r.Trace != nil {
		r.Trace(append([]string{path}, args...))
	}
	cmd := exec.CommandContext(ctx, path, args...)
	setProcAttrs(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 5 * time.Second
	stderr := &tailBuffer{limit: stderrLimit}
	cmd.Stderr = stderr
	return cmd, stderr
}

// Decode decodes every stream of the file at path and fails, with what
// ffmpeg printed, when ffmpeg prints anything at all: a clean file decodes
// in silence at -v error.
func (r *Runner) Decode(ctx context.Context, path string) error {
	return r.decode(ctx, []string{"-hide_banner", "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-i", path, "-f", "null", "-"})
}

// DecodeAt decodes the picture of the file at path for seconds from each
// of starts (seconds from the file's start; each window begins at the
// key frame at or before its start), and fails as Decode does. A dozen
// windows share one ffmpeg.
func (r *Runner) DecodeAt(ctx context.Context, path string, starts []float64, seconds float64) error {
	const batch = 12
	dur := strconv.FormatFloat(seconds, 'f', 6, 64)
	for len(starts) > 0 {
		n := min(batch, len(starts))
		args := []string{"-hide_banner", "-nostdin", "-v", "error", "-protocol_whitelist", "file"}
		for _, at := range starts[:n] {
			args = append(args, "-ss", strconv.FormatFloat(max(at, 0), 'f', 6, 64), "-t", dur, "-i", path)
		}
		for i := range n {
			args = append(args, "-map", strconv.Itoa(i)+":v:0", "-f", "null", "-")
		}
		if err := r.decode(ctx, args); err != nil {
			return err
		}
		starts = starts[n:]
	}
	return nil
}

// decode runs a decoding ffmpeg that must print nothing at -v error.
func (r *Runner) decode(ctx context.Context, args []string) error {
	cmd, stderr := r.command(ctx, args)
	err := cmd.Run()
	if ctx.Err() != nil {
		return ittybit.Errorf(ittybit.ErrCancelled, "decode cancelled")
	}
	if msg := lastLines(hidePaths(stderr.String(), args), 3); msg != "" {
		return errors.New(msg)
	}
	if err != nil {
		return fmt.Errorf("ffmpeg: %v", err)
	}
	return nil
}

// hidePaths keeps this node's file layout out of messages that reach API
// users: ffmpeg names the files it reads and writes, which are the
// absolute paths among its arguments.
func hidePaths(msg string, args []string) string {
	for _, a := range args {
		if filepath.IsAbs(a) && len(a) > 1 {
			msg = strings.ReplaceAll(msg, a, filepath.Base(a))
		}
	}
	return msg
}

// classify maps a failed run to an error kind from what ffmpeg printed.
func classify(stderr string, werr error) error {
	lines := lastLines(stderr, 3)
	if lines == "" {
		lines = werr.Error()
	}
	decodeSigns := []string{
		"Invalid data found when processing input", "moov atom not found",
		"could not find codec parameters", "Error while decoding", "not on whitelist",
		"Protocol not on whitelist", "exceeds specified max pixel count",
	}
	for _, s := range decodeSigns {
		if strings.Contains(stderr, s) {
			return ittybit.Errorf(ittybit.ErrInvalidMedia, "ffmpeg could not read the input: %s", lines)
		}
	}
	return ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg failed (%v): %s", werr, lines)
}

// lastLines returns up to n last non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var out []string
	all := strings.Split(s, "\n")
	for i := len(all) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(all[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	return strings.Join(out, " | ")
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Version returns the first line of `ffmpeg -version`.
func (r *Runner) Version(ctx context.Context) (string, error) {
	path := r.Path
	if path == "" {
		path = "ffmpeg"
	}
	out, err := exec.CommandContext(ctx, path, "-hide_banner", "-version").Output()
	if err != nil {
		return "", fmt.Errorf("ffmpeg -version: %w", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first), nil
}
