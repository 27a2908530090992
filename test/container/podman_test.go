package container

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runFlags go to every `podman run`. Explicit ulimits: the runtime sets the
// container's rlimits, and podman's default open-files limit can be above
// what a host without CAP_SYS_RESOURCE may set. Host networking: the
// containers reach each other and the test's input server on loopback.
var runFlags = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "host"}

// commandTimeout bounds one podman command, so a wedged runtime fails the
// test rather than hanging it.
const commandTimeout = 3 * time.Minute

// podman runs podman for the tests on the image under test.
type podman struct {
	image  string
	global []string // flags before the podman command
}

// mustPodman returns the image under test ($ITTYBIT_IMAGE, by default
// localhost/ittybit:latest) and how to run it. It skips the test unless
// ITTYBIT_TEST_IMAGE=1, or where podman cannot start a container, and fails
// it when the image is not there.
func mustPodman(tb testing.TB) *podman {
	tb.Helper()
	if os.Getenv("ITTYBIT_TEST_IMAGE") != "1" {
		tb.Skip("the container image tests run with ITTYBIT_TEST_IMAGE=1: make test-image")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		tb.Skip("podman is not installed (make image-deps installs it)")
	}
	p := &podman{image: os.Getenv("ITTYBIT_IMAGE")}
	if p.image == "" {
		p.image = "localhost/ittybit:latest"
	}
	// runc where installed: crun, podman's default on Debian, fails on
	// hosts with hybrid cgroups and without CAP_SYS_RESOURCE; runc does not.
	if _, err := exec.LookPath("runc"); err == nil {
		p.global = []string{"--runtime", "runc"}
	}
	if _, err := p.output(tb, "image", "exists", p.image); err != nil {
		tb.Fatalf("image %s not found: build it with make image", p.image)
	}
	if _, err := p.output(tb, p.run("--rm", "--no-healthcheck", "--entrypoint", "true", p.image)...); err != nil {
		tb.Skipf("podman cannot run a container here: %v", err)
	}
	return p
}

// run returns the arguments of `podman run` with runFlags, then args.
func (p *podman) run(args ...string) []string {
	return append(append([]string{"run"}, runFlags...), args...)
}

// output runs podman with args and returns its standard output; the error
// carries its standard error.
func (p *podman) output(tb testing.TB, args ...string) ([]byte, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, p.global...), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// mustOutput is output that fails the test on an error.
func (p *podman) mustOutput(tb testing.TB, args ...string) []byte {
	tb.Helper()
	out, err := p.output(tb, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// in runs a program of the image (not ittybit) in a throwaway container
// and returns its standard output.
func (p *podman) in(tb testing.TB, program string, args ...string) []byte {
	tb.Helper()
	return p.mustOutput(tb, p.run(append([]string{"--rm", "--no-healthcheck", "--entrypoint", program, p.image}, args...)...)...)
}

// logs returns the end of a container's output, standard error (where
// ittybit logs) included.
func (p *podman) logs(container string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", append(append([]string{}, p.global...), "logs", "--tail", "40", container)...).CombinedOutput()
	if err != nil {
		return fmt.Appendf(out, "(podman logs: %v)", err)
	}
	return out
}
