package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/pipeline"
	"github.com/ittybit-oss/ittybit/plugins/builtin"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
	"github.com/ittybit-oss/ittybit/storage"
)

// mediaCommand describes one of the seed's CLI commands.
type mediaCommand struct {
	use   string
	kind  encoders.Kind
	short string
	// example is shown in --help.
	example string
}

var (
	videoCommand = mediaCommand{"video", encoders.KindVideo, "Convert and resize a video",
		"  ittybit video -i clip.mov -o out.mp4 --width 1280 --height 720 --quality high\n  ittybit video -i clip.mov --format webm --codec av1 --start 2 --end 12"}
	audioCommand = mediaCommand{"audio", encoders.KindAudio, "Extract or convert an audio track",
		"  ittybit audio -i interview.mp4 --format mp3 --quality high"}
	imageCommand = mediaCommand{"image", encoders.KindImage, "Make an image: a poster frame of a video, or a resized picture",
		"  ittybit image -i video.mp4 --start 5 --format webp --width 640"}
	adaptiveCommand = mediaCommand{"adaptive", encoders.KindAdaptive, "Make an adaptive HLS stream with a ladder of renditions",
		"  ittybit adaptive -i video.mp4 -o stream/master.m3u8 --quality high"}
)

// optionHelp is each option flag's help text.
var optionHelp = map[string]string{
	"format":     "output format (video: mp4, webm, mov; audio: mp3, aac, ogg, opus, wav, flac; image: jpeg, png, webp, gif, avif; adaptive: hls)",
	"codec":      "video codec: h264, h265, vp9, av1",
	"quality":    "very_low, low, medium, high, very_high (default medium)",
	"width":      `width in pixels, or a percentage of the source such as "50%"`,
	"height":     `height in pixels, or a percentage of the source such as "50%"`,
	"fit":        "how the picture fills width × height: contain (default), cover, fill",
	"position":   "where the picture sits (contain) or is cropped (cover): center, top, bottom, left, right, top_left, …",
	"background": `color of the bars with --fit contain, e.g. "#000000"`,
	"fps":        "frames per second, 1 to 60",
	"bitrate":    "target bits per second (video 300000 to 60000000, audio 32000 to 320000)",
	"start":      "start time in seconds (image: the frame time)",
	"end":        "end time in seconds",
}

// optionFlags are the flag names that mirror API options, in API order.
var optionFlags = []string{"format", "codec", "quality", "width", "height", "fit", "position", "background", "fps", "bitrate", "start", "end"}

type mediaFlags struct {
	input, output string
	pluginDir     string
	metadata      []string
	jsonOut       bool
	debug         bool
	local         bool
	cloud         bool
	async         bool
	values        map[string]*string
}

func newMediaCmd(mc mediaCommand, stdout, stderr io.Writer) *cobra.Command {
	f := &mediaFlags{values: map[string]*string{}}
	cmd := &cobra.Command{
		Use:     mc.use + " -i INPUT [-o OUTPUT] [options]",
		Short:   mc.short,
		Example: mc.example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.cloud && f.local {
				return usageError{fmt.Errorf("--cloud and --local exclude each other")}
			}
			if f.cloud {
				return runCloud(cmd, mc, f, stdout, stderr)
			}
			return runLocal(cmd, mc, f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.input, "input", "i", "", "source: a local file or an http(s) URL (required)")
	fl.StringVarP(&f.output, "output", "o", "", "where to write (adaptive: the master playlist, renditions go beside it); default derived from the input")
	fl.StringArrayVar(&f.metadata, "metadata", nil, "key=value to attach to the task (repeatable)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the finished task as JSON")
	fl.BoolVar(&f.debug, "debug", false, "print every ffmpeg and ffprobe command to stderr")
	fl.BoolVar(&f.local, "local", false, "run on this machine (the default)")
	fl.BoolVar(&f.cloud, "cloud", false, "submit to the ittybit API at $ITTYBIT_API_URL (default http://127.0.0.1:8080) with $ITTYBIT_API_KEY")
	fl.BoolVar(&f.async, "async", false, "with --cloud: print the new task and return without waiting")
	fl.StringVar(&f.pluginDir, "plugin-dir", "", "also use the external encoder plugins in this folder")
	accepted := encoders.OptionNames(mc.kind)
	for _, name := range optionFlags {
		f.values[name] = fl.String(name, "", optionHelp[name])
		if !slices.Contains(accepted, name) {
			// Accepted so that validation can say why it does not apply.
			_ = fl.MarkHidden(name)
		}
	}
	return cmd
}

// spec builds the task spec from the flags. Option values go through the
// same decoding and validation as an API request.
func (f *mediaFlags) spec(cmd *cobra.Command, kind encoders.Kind) (encoders.Spec, error) {
	var opts encoders.Options
	for _, name := range optionFlags {
		if cmd.Flags().Changed(name) {
			opts.Set(name, *f.values[name])
		}
	}
	s := encoders.Spec{Kind: kind, Input: f.input, Options: opts}
	if strings.HasPrefix(f.output, "s3://") {
		s.Output = f.output
	}
	return s, nil
}

func runLocal(cmd *cobra.Command, mc mediaCommand, f *mediaFlags, stdout, stderr io.Writer) error {
	if f.input == "" {
		return usageError{fmt.Errorf("input_required: -i INPUT is required: a local file or an http(s) URL")}
	}
	meta, err := parseMetadata(f.metadata)
	if err != nil {
		return usageError{err}
	}
	spec, _ := f.spec(cmd, mc.kind)
	output := f.output
	if output == "" {
		output = defaultOutput(f.input, mc.kind, encoders.Defaults(mc.kind, spec.Options, "").Format)
	}
	if strings.HasPrefix(output, "s3://") {
		return usageError{fmt.Errorf("invalid_output: writing to s3:// needs an ittybit server (--cloud); in local mode -o is a local path")}
	}
	check := spec
	check.Output = output
	if err := encoders.Validate(check, encoders.Policy{LocalPaths: true}); err != nil {
		for _, p := range ittybit.Problems(err) {
			fmt.Fprintf(stderr, "error: %s: %s\n", p.Kind, p.Message)
		}
		return usageError{errReported}
	}
	spec.Output = ""
	if mc.kind == encoders.KindAdaptive || encoders.FormatFromName(mc.kind, output) != "" || spec.Options.Format != "" {
		// The output name told Validate the format; the plan needs it too.
		spec.Output = output
	}

	trace := func(argv []string) {}
	if f.debug {
		trace = func(argv []string) { fmt.Fprintln(stderr, "+ "+shellQuote(argv)) }
	}
	hcfg, err := hostConfig(f.pluginDir, true, stderr)
	if err != nil {
		return err
	}
	// Encodes run in the built-in plugins an agent runs: the hardware ones
	// this machine's device nodes allow, in processes of their own, and
	// the software one in this process (a process start costs a thumbnail
	// more than its encode), all started now, beside the probe.
	hcfg.Builtins = builtin.Possible(detect.Config{})
	software, err := builtin.New("software", builtin.Config{Detect: detect.Config{CacheDir: detect.DefaultCacheDir()}, Version: version})
	if err != nil {
		return err
	}
	hcfg.InProcess = map[string]encoderplugin.Encoder{"software": software}
	plugins := startHost(cmd.Context(), hcfg)
	local := &pipeline.Local{
		// Local mode is the user's own machine: any address they can reach.
		Fetcher: storage.NewFetcher(storage.FetchConfig{AllowPrivate: true}),
		Prober:  &probe.Prober{Trace: trace},
		Encoder: plugins,
		Trace:   trace,
	}
	display := newProgressDisplay(stderr, f.jsonOut)
	task, runErr := local.Run(cmd.Context(), spec, output, display.update)
	display.done()
	if err := plugins.Close(); err != nil {
		return err
	}
	task.Metadata = meta
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(task); err != nil {
			return err
		}
	}
	if runErr != nil {
		kind, msg := ittybit.Summary(runErr)
		fmt.Fprintf(stderr, "error: %s: %s\n", kind, msg)
		return errReported
	}
	if !f.jsonOut {
		printResult(stdout, task)
	}
	return nil
}

// defaultOutput names the output after the input, in the current folder,
// without overwriting anything: clip.mov → clip.mp4, then clip-1.mp4, …
// An adaptive stream gets a folder: clip/master.m3u8.
func defaultOutput(input string, kind encoders.Kind, format string) string {
	base := input
	if i := strings.IndexAny(base, "?#"); i >= 0 && strings.Contains(input, "://") {
		base = base[:i]
	}
	stem := strings.TrimSuffix(filepath.Base(base), filepath.Ext(base))
	if stem == "" || stem == "." || stem == "/" {
		stem = "output"
	}
	for i := 0; ; i++ {
		name := stem
		if i > 0 {
			name += "-" + strconv.Itoa(i)
		}
		var candidate, probe string
		if kind == encoders.KindAdaptive {
			candidate, probe = filepath.Join(name, "master.m3u8"), name
		} else {
			candidate = name + encoders.Extension(format)
			probe = candidate
		}
		if _, err := os.Stat(probe); errors.Is(err, os.ErrNotExist) {
			return candidate
		}
	}
}

func parseMetadata(pairs []string) (json.RawMessage, error) {
	m := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid_option: --metadata %q must be key=value", p)
		}
		m[k] = v
	}
	return json.Marshal(m)
}

// shellQuote renders argv as a shell would need it typed.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,%@") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
