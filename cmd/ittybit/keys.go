package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

func newProjectsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projects",
		Short: "Manage projects: tenants whose keys see only their own tasks ($ITTYBIT_API_URL, $ITTYBIT_API_KEY: an operator's key)",
	}
	var weight, maxConcurrent int
	create := &cobra.Command{
		Use:   "create NAME [--weight N] [--max-concurrent-tasks N]",
		Short: "Create a project and print it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := apiClient().CreateProject(cmd.Context(), args[0], weight, maxConcurrent)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, p)
		},
	}
	create.Flags().IntVar(&maxConcurrent, "max-concurrent-tasks", 0, "the most of its tasks running at once; the rest wait (default: no cap)")
	create.Flags().IntVar(&weight, "weight", 0, "its share of the fleet against the other projects at the same priority, 1 to 100 (default 1)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := apiClient().Projects(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, l)
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}

func newKeysCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage a project's API keys ($ITTYBIT_API_URL, $ITTYBIT_API_KEY: an operator's key, or a project key with the admin scope)",
	}
	var project, scopes, priority string
	var rateLimit float64
	create := &cobra.Command{
		Use:   "create NAME [--project ID] [--scopes S,S] [--rate-limit N]",
		Short: "Create a key and print it with its secret (shown only this once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.KeyRequest{Name: &args[0]}
			if project != "" {
				req.Project = &project
			}
			if cmd.Flags().Changed("scopes") {
				req.Scopes = strings.Split(scopes, ",")
			}
			if cmd.Flags().Changed("rate-limit") {
				req.RateLimit = &rateLimit
			}
			if priority != "" {
				req.Priority = &priority
			}
			k, err := apiClient().CreateKey(cmd.Context(), req)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, k)
		},
	}
	create.Flags().StringVar(&project, "project", "", "the project (proj_…); required with an operator's key, else the key's own")
	create.Flags().StringVar(&scopes, "scopes", strings.Join(api.DefaultScopes(), ","), "comma-separated: "+strings.Join(api.Scopes(), ", "))
	create.Flags().StringVar(&priority, "priority", "", "the priority of its tasks that name none: low, normal (default) or high")
	create.Flags().Float64Var(&rateLimit, "rate-limit", 0, "requests per second (bursts of twice that); 0: the server's --rate-limit")
	var listProject string
	list := &cobra.Command{
		Use:   "list [--project ID]",
		Short: "List the keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := apiClient().Keys(cmd.Context(), listProject)
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, l)
		},
	}
	list.Flags().StringVar(&listProject, "project", "", "only this project's keys")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key: every server refuses it once the revocation is committed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := apiClient().RevokeKey(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return printJSON(stdout, k)
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
