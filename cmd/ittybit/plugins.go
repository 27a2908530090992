package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/plugins/builtin"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
	"github.com/ittybit-oss/ittybit/plugins/host"
)

// newPluginCmd is `ittybit plugin serve NAME`: the process the plugin host
// starts for each built-in plugin.
func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Encoder plugins (ittybit starts these itself)",
	}
	var cfg detect.Config
	serve := &cobra.Command{
		Use:   "serve NAME",
		Short: "Serve a built-in encoder plugin: software, nvenc, qsv or vaapi",
		Long: `Serve a built-in encoder plugin over go-plugin's gRPC protocol.

ittybit starts "ittybit plugin serve NAME" itself, once per built-in plugin,
exactly as it starts the external plugins of a plugin directory; running it
by hand only prints a notice.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := builtin.New(args[0], builtin.Config{Detect: cfg, Version: version})
			if err != nil {
				return usageError{err}
			}
			if os.Getenv("CUDA_DEVICE_ORDER") == "" {
				// CUDA numbers GPUs fastest first, nvidia-smi by PCI bus;
				// detection names GPUs by nvidia-smi's numbers, so the
				// ffmpeg processes of this plugin count the same way.
				os.Setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
			}
			encoderplugin.Serve(p)
			return nil
		},
	}
	fl := serve.Flags()
	fl.StringVar(&cfg.FFmpeg, "ffmpeg", "", "the ffmpeg program (default: ffmpeg on PATH)")
	fl.StringVar(&cfg.NvidiaSMI, "nvidia-smi", "", "the nvidia-smi program (default: nvidia-smi on PATH)")
	fl.StringVar(&cfg.Root, "root", "", "look for device nodes under this folder instead of / (tests)")
	fl.StringVar(&cfg.CacheDir, "cache-dir", "", "keep detection's report in this folder, reused while ffmpeg, nvidia-smi and the device nodes stay the same (the CLI's ~/.cache/ittybit)")
	_ = fl.MarkHidden("root")
	cmd.AddCommand(serve)
	return cmd
}

// hostConfig is the plugin host of this binary: every built-in plugin, and
// the external ones of pluginDir. Warnings go to stderr. With cached, the
// built-in plugins keep their detection in the user's cache folder (the
// CLI; a long-running agent detects once, afresh).
func hostConfig(pluginDir string, cached bool, stderr io.Writer) (host.Config, error) {
	self, err := os.Executable()
	if err != nil {
		return host.Config{}, fmt.Errorf("find the ittybit binary: %w", err)
	}
	var args []string
	if dir := detect.DefaultCacheDir(); dir != "" && cached {
		args = []string{"--cache-dir", dir}
	}
	return host.Config{
		Self:        self,
		Builtins:    builtin.Names(),
		BuiltinArgs: args,
		PluginDir:   pluginDir,
		Logger:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, nil
}

// earlyHost starts the plugin host as soon as a task is accepted, in
// parallel with its probe, so that the plugins' start and detection cost
// the encode no wait.
type earlyHost struct {
	ready chan struct{}
	h     *host.Host
	err   error
}

// startHost starts the plugin host of cfg in the background.
func startHost(ctx context.Context, cfg host.Config) *earlyHost {
	e := &earlyHost{ready: make(chan struct{})}
	go func() {
		defer close(e.ready)
		e.h, e.err = host.Open(context.WithoutCancel(ctx), cfg)
	}()
	return e
}

func (e *earlyHost) Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error) {
	select {
	case <-e.ready:
	case <-ctx.Done():
		return encoders.Result{}, ittybit.Errorf(ittybit.ErrCancelled, "encode cancelled")
	}
	if e.err != nil {
		return encoders.Result{}, ittybit.Errorf(ittybit.ErrInternal, "start the encoder plugins: %v", e.err)
	}
	return e.h.Encode(ctx, req, progress)
}

// Close waits for the host to have started, then kills the plugins.
func (e *earlyHost) Close() error {
	<-e.ready
	if e.h == nil {
		return nil
	}
	return e.h.Close()
}
