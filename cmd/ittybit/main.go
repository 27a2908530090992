// Command ittybit is the one binary of ittybit: the local CLI, the control
// plane server, the node agent and the embedded default. main only parses
// flags and wires packages together; the work lives in importable packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// run executes the command line args and returns what failed, if anything.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && !errors.Is(err, errReported) {
		fmt.Fprintln(stderr, "error:", err)
	}
	return err
}

// errReported marks an error whose message the command already printed.
var errReported = errors.New("reported")

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ittybit",
		Short: "Process media: video, audio, images and HLS, locally or on an ittybit cluster",
		Long: `ittybit turns media into the files you need: resized and re-encoded video,
extracted audio, poster images and adaptive HLS streams.

Run a task on this machine:

  ittybit video -i clip.mov -o out.mp4 --width 1280 --height 720 --quality high
  ittybit audio -i interview.mp4 --format mp3
  ittybit image -i video.mp4 --start 5 --format webp --width 640
  ittybit adaptive -i video.mp4 -o stream/master.m3u8`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, k := range []mediaCommand{videoCommand, audioCommand, imageCommand, adaptiveCommand} {
		root.AddCommand(newMediaCmd(k, stdout, stderr))
	}
	root.AddCommand(newServerCmd(stderr), newDevCmd(stdout, stderr), newHashKeyCmd(stdin, stdout), newTasksCmd(stdout, stderr), newEventsCmd(stdout), newWebhooksCmd(stdout), newProjectsCmd(stdout), newKeysCmd(stdout), newAgentCmd(stderr))
	root.AddCommand(newEncodersCmd(stdout, stderr))
	root.AddCommand(newPluginCmd())
	root.AddCommand(newVersionCmd(stdout))
	return root
}
