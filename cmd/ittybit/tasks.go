package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
)

// apiClient is the client of $ITTYBIT_API_URL with $ITTYBIT_API_KEY.
func apiClient() *client.Client {
	base := os.Getenv("ITTYBIT_API_URL")
	if base == "" {
		base = client.DefaultURL
	}
	return client.New(base, os.Getenv("ITTYBIT_API_KEY"))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// apiErr reports an API error as "kind: message".
func apiErr(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.Kind, ae.Message)
	}
	return err
}

func newTasksCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "Create, inspect, wait for and cancel tasks through the API ($ITTYBIT_API_URL, $ITTYBIT_API_KEY)",
	}
	cmd.AddCommand(newTasksCreateCmd(stdout, stderr), newTasksGetCmd(stdout), newTasksListCmd(stdout),
		newTasksWaitCmd(stdout, stderr), newTasksCancelCmd(stdout))
	return cmd
}

func newTasksCreateCmd(stdout, stderr io.Writer) *cobra.Command {
	var kind, input, output, options, metadata, idemKey, priority string
	var wait bool
	cmd := &cobra.Command{
		Use:   "create --kind KIND -i URL [-o s3://…] [--options JSON] [--metadata JSON]",
		Short: "Create a task (POST /tasks) and print it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := api.CreateTaskRequest{Kind: encoders.Kind(kind), Input: input, Output: output, Priority: priority}
			if options != "" {
				if err := json.Unmarshal([]byte(options), &req.Options); err != nil {
					return usageError{fmt.Errorf("invalid_json: --options is not JSON: %v", err)}
				}
			}
			if metadata != "" {
				if !json.Valid([]byte(metadata)) || !strings.HasPrefix(strings.TrimSpace(metadata), "{") {
					return usageError{fmt.Errorf("invalid_json: --metadata must be a JSON object")}
				}
				req.Metadata = json.RawMessage(metadata)
			}
			c := apiClient()
			t, err := c.Create(cmd.Context(), req, client.CreateOptions{IdempotencyKey: idemKey})
			if err != nil {
				return apiErr(err)
			}
			if wait {
				return waitAndPrint(cmd.Context(), c, t.ID, stdout, stderr, true)
			}
			return printJSON(stdout, t)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kind, "kind", "", "video, audio, image or adaptive_video (required)")
	fl.StringVarP(&input, "input", "i", "", "source URL: http://, https:// or s3:// (required)")
	fl.StringVarP(&output, "output", "o", "", "destination s3://bucket/key (default: managed storage)")
	fl.StringVar(&options, "options", "", `options as JSON, e.g. '{"width":1280,"format":"mp4"}'`)
	fl.StringVar(&metadata, "metadata", "", "metadata as a JSON object")
	fl.StringVar(&priority, "priority", "", "low, normal or high (default: the API key's)")
	fl.StringVar(&idemKey, "idempotency-key", "", "Idempotency-Key header: a retry with the same key returns the same task")
	fl.BoolVar(&wait, "wait", false, "wait until the task ends, then print it")
	return cmd
}

func newTasksGetCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Print a task",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := apiClient().Get(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, t)
		},
	}
}

func newTasksListCmd(stdout io.Writer) *cobra.Command {
	var o client.ListOptions
	cmd := &cobra.Command{
		Use:   "list [--limit N] [--after ID | --before ID] [--order asc|desc] [--status S] [--kind K]",
		Short: "List tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := apiClient().List(cmd.Context(), o)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, l)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Limit, "limit", 0, "page size, 1 to 100 (default 20)")
	fl.StringVar(&o.After, "after", "", "start after this task id")
	fl.StringVar(&o.Before, "before", "", "end before this task id")
	fl.StringVar(&o.Order, "order", "", "desc (default) or asc")
	fl.StringVar(&o.Status, "status", "", "only tasks with this status")
	fl.StringVar(&o.Kind, "kind", "", "only tasks of this kind")
	return cmd
}

func newTasksWaitCmd(stdout, stderr io.Writer) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Show a task's progress until it ends, then print it; non-zero exit if it failed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return waitAndPrint(cmd.Context(), apiClient(), args[0], stdout, stderr, !quiet)
		},
	}
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress, only the final task")
	return cmd
}

func newTasksCancelCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := apiClient().Cancel(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, t)
		},
	}
}

// waitAndPrint follows a task to its end, showing progress on stderr, and
// prints the final task as JSON. A task that did not complete is an error
// carrying its kind.
func waitAndPrint(ctx context.Context, c *client.Client, id string, stdout, stderr io.Writer, showProgress bool) error {
	t, err := follow(ctx, c, id, stderr, !showProgress)
	if err != nil {
		return apiErr(err)
	}
	if err := printJSON(stdout, t); err != nil {
		return err
	}
	return taskErr(t)
}

// follow polls a task until it ends, feeding its steps' progress to the
// display: the running step's, and 100% for each step as it completes.
func follow(ctx context.Context, c *client.Client, id string, stderr io.Writer, quiet bool) (*api.Task, error) {
	display := newProgressDisplay(stderr, quiet)
	defer display.done()
	finished := map[string]bool{}
	return c.Wait(ctx, id, 250*time.Millisecond, func(t *api.Task) {
		for _, s := range t.Steps {
			switch s.Status {
			case api.StepCompleted:
				if !finished[s.Kind] {
					finished[s.Kind] = true
					display.update(s.Kind, encoders.Progress{Fraction: 1})
				}
			case api.StepProcessing:
				p := 0.0
				if s.Progress != nil {
					p = *s.Progress
				}
				display.update(s.Kind, encoders.Progress{Fraction: p})
				return
			}
		}
	})
}

// taskErr is nil for a completed task, else the task's error.
func taskErr(t *api.Task) error {
	if t.Status == api.TaskCompleted {
		return nil
	}
	if t.Error != nil {
		return fmt.Errorf("task %s %s: %s: %s", t.ID, t.Status, t.Error.Kind, t.Error.Message)
	}
	return fmt.Errorf("task %s %s", t.ID, t.Status)
}
