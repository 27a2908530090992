package detect

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
)

// build is what the ffmpeg build has.
type build struct {
	encoders map[string]bool
	filters  map[string]bool
}

// readBuild runs `ffmpeg -encoders` and, for the GPU backends, `ffmpeg
// -filters`.
func readBuild(ctx context.Context, cfg Config, withFilters bool) (build, error) {
	enc, err := cfg.listing(ctx, "-encoders")
	if err != nil {
		return build{}, fmt.Errorf("ffmpeg -encoders failed: %w", err)
	}
	if !withFilters {
		return build{encoders: ParseEncoders(enc)}, nil
	}
	filters, err := cfg.listing(ctx, "-filters")
	if err != nil {
		return build{}, fmt.Errorf("ffmpeg -filters failed: %w", err)
	}
	return build{encoders: ParseEncoders(enc), filters: ParseFilters(filters)}, nil
}

// listing runs `ffmpeg -hide_banner WHAT` and returns what it lists. A
// listing touches no device, so one that runs out of time was held up by
// the host (ffmpeg's binary and libraries read from a cold or busy disk),
// not by ffmpeg: it is run once more, under twice the timeout, before the
// backend is reported unusable.
func (c Config) listing(ctx context.Context, what string) (string, error) {
	out, err := c.output(ctx, c.ffmpeg(), "-hide_banner", what)
	if errors.Is(err, errTimedOut) && ctx.Err() == nil {
		longer := c
		longer.Timeout = 2 * c.timeout()
		out, err = longer.output(ctx, c.ffmpeg(), "-hide_banner", what)
	}
	return out, err
}

// errTimedOut marks a command that ran out of time: its answer says
// nothing about the machine (listing runs it again; run also counts it in
// the context, so that Detect does not cache the report).
var errTimedOut = errors.New("timed out")

// timeoutsKey keys the count of one detection's commands that timed out.
type timeoutsKey struct{}

// withTimeouts returns a context in which run counts the commands that
// time out, and a function that reads that count.
func withTimeouts(ctx context.Context) (context.Context, func() int32) {
	var n atomic.Int32
	return context.WithValue(ctx, timeoutsKey{}, &n), n.Load
}

// output runs a command under the timeout and returns its stdout; the error
// carries the last line of stderr.
func (c Config) output(ctx context.Context, name string, args ...string) (string, error) {
	stdout, stderr, err := c.run(ctx, name, args...)
	if err != nil {
		// nvidia-smi explains itself on stdout, ffmpeg on stderr.
		if line := cmp.Or(lastLine(stderr), lastLine(stdout)); line != "" {
			return "", fmt.Errorf("%w: %s", err, line)
		}
		return "", err
	}
	return stdout, nil
}

// run runs a command under the timeout; no shell, no stdin.
func (c Config) run(ctx context.Context, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("%s not found", name)
	} else if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("%s %w after %s", path.Base(name), errTimedOut, c.timeout())
		if n, ok := ctx.Value(timeoutsKey{}).(*atomic.Int32); ok {
			n.Add(1)
		}
	}
	return out.String(), errb.String(), err
}

// testEncode encodes one generated frame with encoder on the device that
// hwArgs open, uploading it through upload (a filter chain), and reports
// whether that worked and if not why: only the exit status counts, since
// ffmpeg warns freely on success.
func (c Config) testEncode(ctx context.Context, hwArgs []string, upload, encoder string) (ok bool, reason string) {
	args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, hwArgs...)
	args = append(args, "-f", "lavfi", "-i", "testsrc2=s=256x256:r=30", "-frames:v", "1",
		"-vf", upload, "-c:v", encoder, "-f", "null", "-")
	_, stderr, err := c.run(ctx, c.ffmpeg(), args...)
	if err == nil {
		return true, ""
	}
	return false, "test encode with " + encoder + " failed: " + encoderError(stderr, encoder, err)
}

// encoderError picks what ffmpeg said about encoder: its own last two lines
// ("[h264_nvenc @ 0x…] OpenEncodeSessionEx failed: …"), which say more
// than the generic last line, else the last line, else err.
func encoderError(stderr, encoder string, err error) string {
	var own []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "["+encoder+" @ ") {
			own = append(own, lastLine(l))
		}
	}
	if len(own) > 2 {
		own = own[len(own)-2:]
	}
	if len(own) > 0 {
		return strings.Join(own, "; ")
	}
	if l := lastLine(stderr); l != "" {
		return l
	}
	return err.Error()
}

// lastLine returns the last non-empty line of s, without ffmpeg's
// "[h264_nvenc @ 0x…] " prefix.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if i := strings.Index(l, "] "); strings.HasPrefix(l, "[") && i > 0 {
		l = l[i+2:]
	}
	return l
}

// deviceNodes lists the entries of dir (a path like "/dev/dri", under the
// configured root) whose names match, as paths outside the root
// ("/dev/dri/renderD128"), sorted.
func deviceNodes(cfg Config, dir string, match *regexp.Regexp) []string {
	entries, err := os.ReadDir(cfg.onHost(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if match.MatchString(e.Name()) {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		// renderD128 before renderD1000: by length, then by name.
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return out
}

// openCheck says why this process cannot use a device node, or "".
func openCheck(cfg Config, node string) string {
	f, err := os.OpenFile(cfg.onHost(node), os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return ""
	}
	if errors.Is(err, os.ErrPermission) {
		return "cannot open " + node + ": permission denied (the user running ittybit needs the render group)"
	}
	return "cannot open " + node + ": " + err.Error()
}
