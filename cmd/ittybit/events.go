package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
)

func newEventsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read what happened to tasks: the event list and the live feed ($ITTYBIT_API_URL, $ITTYBIT_API_KEY)",
	}
	var o client.EventOptions
	var typ string
	flags := func(c *cobra.Command) {
		fl := c.Flags()
		fl.StringVar(&o.After, "after", "", "start after this event id (default: the oldest kept)")
		fl.StringVar(&typ, "type", "", "only events of this type (task.created, task.completed, step.failed, …)")
		fl.StringVar(&o.TaskID, "task", "", "only the events of this task")
	}
	tail := &cobra.Command{
		Use:   "tail [--after ID] [--type T] [--task ID]",
		Short: "Follow the live feed: print each event as one JSON line as it happens, resuming across dropped connections, until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Type = api.EventType(typ)
			enc := json.NewEncoder(stdout)
			err := apiClient().Follow(cmd.Context(), o, func(e api.Event) error { return enc.Encode(e) })
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return apiErr(err)
		},
	}
	flags(tail)
	list := &cobra.Command{
		Use:   "list [--after ID] [--limit N] [--type T] [--task ID]",
		Short: "Print a page of events, oldest first (GET /events)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Type = api.EventType(typ)
			l, err := apiClient().Events(cmd.Context(), o)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, l)
		},
	}
	flags(list)
	list.Flags().IntVar(&o.Limit, "limit", 0, "page size, 1–100 (default 20)")
	cmd.AddCommand(tail, list)
	return cmd
}
