package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

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
	_ = fl.MarkHidden("root")
	cmd.AddCommand(serve)
	return cmd
}

// hostConfig is the plugin host of this binary: every built-in plugin, and
// the external ones of pluginDir. Warnings go to stderr.
func hostConfig(pluginDir string, stderr io.Writer) (host.Config, error) {
	self, err := os.Executable()
	if err != nil {
		return host.Config{}, fmt.Errorf("find the ittybit binary: %w", err)
	}
	return host.Config{
		Self:      self,
		Builtins:  builtin.Names(),
		PluginDir: pluginDir,
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, nil
}

// lazyHost starts the plugin host on the first encode, so that a command
// that fails before (a missing input, an undecodable file) starts no
// plugin process.
type lazyHost struct {
	cfg  host.Config
	once sync.Once
	h    *host.Host
	err  error
}

func (l *lazyHost) Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error) {
	l.once.Do(func() { l.h, l.err = host.Open(ctx, l.cfg) })
	if l.err != nil {
		return encoders.Result{}, ittybit.Errorf(ittybit.ErrInternal, "start the encoder plugins: %v", l.err)
	}
	return l.h.Encode(ctx, req, progress)
}

// Close kills the plugins, if they were started.
func (l *lazyHost) Close() error {
	if l.h == nil {
		return nil
	}
	return l.h.Close()
}
