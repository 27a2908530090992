package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
)

// ittybitBin is the binary under test, built once by TestMain.
var ittybitBin string

// clips are the media the tests feed the pipeline, made on first use.
var clips *encoderstest.Clips

// TestMain builds cmd/ittybit into a temporary folder (not bin/, which
// `make build` owns and stamps with a version), with -race when the tests
// have it, runs the tests and removes it.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ittybit-systest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ittybitBin = filepath.Join(dir, "ittybit")
	args := []string{"build", "-o", ittybitBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/ittybit")...)
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build ./cmd/ittybit:", err)
		return 1
	}
	clips = encoderstest.NewClips()
	defer clips.Close()
	return m.Run()
}
