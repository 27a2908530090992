package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of ittybit, Go and ffmpeg",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ff, err := (&ffmpeg.Runner{}).Version(cmd.Context())
			if err != nil {
				ff = "not found (" + err.Error() + ")"
			}
			fmt.Fprintf(stdout, "ittybit %s (commit %s)\n%s %s/%s\n%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, ff)
			return nil
		},
	}
}
