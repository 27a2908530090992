package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
)

// runCloud submits the command as a task to the API and follows it.
func runCloud(cmd *cobra.Command, mc mediaCommand, f *mediaFlags, stdout, stderr io.Writer) error {
	if f.input == "" {
		return usageError{errors.New("input_required: -i INPUT is required: a URL the server can fetch (http://, https://, s3://)")}
	}
	if !strings.Contains(f.input, "://") {
		return usageError{fmt.Errorf("invalid_input: with --cloud, -i must be a URL the server can fetch (http://, https://, s3://); %q is a local path", f.input)}
	}
	if f.output != "" && !strings.HasPrefix(f.output, "s3://") {
		return usageError{fmt.Errorf("invalid_output: with --cloud, -o must be an s3://bucket/key URL (or nothing, for managed storage); got %q", f.output)}
	}
	meta, err := parseMetadata(f.metadata)
	if err != nil {
		return usageError{err}
	}
	spec, _ := f.spec(cmd, mc.kind)
	req := api.CreateTaskRequest{Input: f.input, Kind: mc.kind, Options: spec.Options, Output: f.output, Metadata: meta}
	c := apiClient()
	t, err := c.Create(cmd.Context(), req, client.CreateOptions{})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && api.Status(ae.Kind) == 400 {
			for _, p := range ae.Errors {
				fmt.Fprintf(stderr, "error: %s: %s\n", p.Kind, p.Message)
			}
			if len(ae.Errors) == 0 {
				fmt.Fprintf(stderr, "error: %s: %s\n", ae.Kind, ae.Message)
			}
			return usageError{errReported}
		}
		return apiErr(err)
	}
	if f.async {
		if f.jsonOut {
			return printJSON(stdout, t)
		}
		fmt.Fprintf(stdout, "%s %s\n", t.ID, t.Status)
		return nil
	}
	if !f.jsonOut {
		fmt.Fprintf(stderr, "task %s queued\n", t.ID)
	}
	final, err := follow(cmd.Context(), c, t.ID, stderr, f.jsonOut)
	if err != nil {
		return apiErr(err)
	}
	if f.jsonOut {
		if err := printJSON(stdout, final); err != nil {
			return err
		}
	}
	if final.Status != api.TaskCompleted {
		kind, msg := ittybit.ErrorKind("failed"), string(final.Status)
		if final.Error != nil {
			kind, msg = ittybit.ErrorKind(final.Error.Kind), final.Error.Message
		}
		fmt.Fprintf(stderr, "error: %s: %s\n", kind, msg)
		return errReported
	}
	if !f.jsonOut {
		printResult(stdout, final)
	}
	return nil
}
