package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

func newWebhooksCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage webhook endpoints: signed deliveries of events ($ITTYBIT_API_URL, $ITTYBIT_API_KEY)",
	}
	var url, events, description string
	create := &cobra.Command{
		Use:   "create --url URL [--events T,T|*] [--description TEXT]",
		Short: "Create an endpoint and print it with its secret (shown only this once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := api.WebhookRequest{URL: &url, Events: strings.Split(events, ",")}
			if description != "" {
				req.Description = &description
			}
			w, err := apiClient().CreateWebhook(cmd.Context(), req)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, w)
		},
	}
	create.Flags().StringVar(&url, "url", "", "where events are posted: an http:// or https:// URL (required)")
	create.Flags().StringVar(&events, "events", "*", "event types to deliver, comma-separated, or * for all")
	create.Flags().StringVar(&description, "description", "", "free text")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the endpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := apiClient().Webhooks(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, l)
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate ID",
		Short: "Make a new secret and print it (the old one keeps signing beside it for 24 h)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := apiClient().RotateWebhook(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, w)
		},
	}
	test := &cobra.Command{
		Use:   "test ID",
		Short: "Send a test message (type webhook.test) to an endpoint and print its delivery",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := apiClient().TestWebhook(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, d)
		},
	}
	var limit int
	deliveries := &cobra.Command{
		Use:   "deliveries ID [--limit N]",
		Short: "List an endpoint's deliveries, newest first, with every attempt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := apiClient().Deliveries(cmd.Context(), args[0], limit)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, l)
		},
	}
	deliveries.Flags().IntVar(&limit, "limit", 0, "page size, 1–100 (default 20)")
	cmd.AddCommand(create, list, rotate, test, deliveries)
	return cmd
}
