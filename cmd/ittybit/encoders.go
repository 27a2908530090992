package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/plugins/host"
)

// newEncodersCmd is `ittybit encoders`: what this machine can encode with.
func newEncodersCmd(stdout, stderr io.Writer) *cobra.Command {
	var jsonOut, refresh bool
	var pluginDir string
	cmd := &cobra.Command{
		Use:   "encoders",
		Short: "List the encoders this machine can use: per plugin, backend and codec",
		Long: `List what this machine can encode with: a row per plugin, backend
(software, nvenc, qsv, vaapi), device and codec, available or not and why,
with the device's session limit (0 or "unlimited": none).

Every built-in plugin runs its detection: device nodes, nvidia-smi, the
ffmpeg build, and a one-frame test encode per device and codec. The
results are kept in ~/.cache/ittybit and reused (here and by the media
commands) while ffmpeg, nvidia-smi and the device nodes stay the same;
--refresh detects afresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hostConfig(pluginDir, true, stderr)
			if err != nil {
				return err
			}
			if dir := detect.DefaultCacheDir(); refresh && dir != "" {
				if err := detect.ClearCache(dir); err != nil {
					return fmt.Errorf("clear the detection cache: %w", err)
				}
			}
			h, err := host.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			caps := h.Capabilities()
			if err := h.Close(); err != nil {
				return err
			}
			if jsonOut {
				if caps == nil {
					caps = []encoders.Capability{}
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(caps)
			}
			return printCapabilities(stdout, caps)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, `print a JSON array of {"plugin","backend","codec","available","reason","device","max_sessions"}`)
	cmd.Flags().StringVar(&pluginDir, "plugin-dir", "", "also run the external encoder plugins in this folder")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "detect afresh, not from the cache")
	return cmd
}

func printCapabilities(w io.Writer, caps []encoders.Capability) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tBACKEND\tCODEC\tAVAILABLE\tSESSIONS\tDEVICE\tREASON")
	for _, c := range caps {
		avail, sessions, device := "no", "-", c.Device
		if c.Available {
			avail, sessions = "yes", "unlimited"
			if c.MaxSessions > 0 {
				sessions = strconv.Itoa(c.MaxSessions)
			}
		}
		if device == "" {
			device = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Plugin, c.Backend, c.Codec, avail, sessions, device, c.Reason)
	}
	return tw.Flush()
}
