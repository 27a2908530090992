// Package release builds the ittybit binary of an earlier commit of this
// repository, for the tests and benchmarks that run two releases side by
// side (a rolling upgrade; a throughput baseline).
package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build builds the binary of commit rev of the repository the working
// directory is in (git archive, then go build) as dir/ittybit-REV, and
// returns its path; a binary already there is used as it is.
func Build(ctx context.Context, rev, dir string) (string, error) {
	bin := filepath.Join(dir, "ittybit-"+rev)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	root, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("release %s is built from the repository's history: %w", rev, err)
	}
	src := filepath.Join(dir, "src-"+rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	tarball := src + ".tar"
	if out, err := exec.CommandContext(ctx, "git", "-C", strings.TrimSpace(string(root)), "archive", "-o", tarball, rev).CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %v: %s", rev, err, out)
	}
	if out, err := exec.CommandContext(ctx, "tar", "-x", "-C", src, "-f", tarball).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack %s: %v: %s", rev, err, out)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ittybit")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v: %s", rev, err, out)
	}
	return bin, nil
}
