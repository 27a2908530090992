package ffmpeg

import (
	"fmt"
	"strconv"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// Args returns the ffmpeg arguments (without the program name) that carry
// out plan on the local file input, writing output. For HLS, output is the
// folder the renditions are written into, one subfolder each; the master
// playlist is written separately (see WriteMaster). A hardware plan runs
// on its backend's first device with every filter on the CPU; DeviceArgs
// names the device and what its build can do.
func Args(plan encoders.Plan, input, output string) ([]string, error) {
	return DeviceArgs(plan, Device{}, input, output)
}

// DeviceArgs is Args for a plan of a hardware backend on dev: as much of
// the work on the GPU as dev's filters allow (see Device). For a software
// plan dev is ignored.
func DeviceArgs(plan encoders.Plan, dev Device, input, output string) ([]string, error) {
	hw, err := newHardware(plan, dev)
	if err != nil {
		return nil, err
	}
	a := []string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1"}
	var hwInput []string
	if hw != nil {
		var global []string
		global, hwInput = hw.inputArgs(plan.Source)
		a = append(a, global...)
	}
	threads := ""
	if hw == nil && plan.Threads > 0 {
		threads = strconv.Itoa(plan.Threads)
		a = append(a, "-filter_threads", threads, "-filter_complex_threads", threads)
	}
	a = append(a, probe.SafeInputArgs()...)
	if plan.Source.Format == "image2" {
		// One file, never a numbered sequence or a glob. Only image2 has
		// the option, and ffmpeg refuses it for other demuxers.
		a = append(a, "-pattern_type", "none")
	}
	a = append(a, hwInput...)
	if plan.Start > 0 {
		a = append(a, "-ss", seconds(plan.Start))
	}
	if plan.Trim && plan.Duration > 0 {
		a = append(a, "-t", seconds(plan.Duration))
	}
	if threads != "" {
		a = append(a, "-threads", threads) // the decoder's
	}
	a = append(a, "-i", input)
	// Source metadata (phone GPS, encoder tags) never reaches the output.
	a = append(a, "-map_metadata", "-1", "-map_chapters", "-1")
	if threads != "" {
		a = append(a, "-threads", threads) // the encoders'
	}

	var rest []string
	switch plan.Kind {
	case encoders.KindVideo:
		rest, err = videoArgs(plan, hw)
	case encoders.KindAudio:
		rest, err = audioArgs(plan)
	case encoders.KindImage:
		rest, err = imageArgs(plan)
	case encoders.KindAdaptive:
		rest, err = hlsArgs(plan, output, hw)
	default:
		err = fmt.Errorf("no ffmpeg arguments for kind %q", plan.Kind)
	}
	if err != nil {
		return nil, err
	}
	a = append(a, rest...)
	if plan.Kind != encoders.KindAdaptive || plan.Format == partFormat {
		a = append(a, output)
	}
	return a, nil
}

// muxers maps output formats to ffmpeg muxers; outputs are written under
// temporary names, so the muxer is always named.
var muxers = map[string][]string{
	"mp4": {"-f", "mp4"}, "mov": {"-f", "mov"}, "webm": {"-f", "webm"},
	"mp3": {"-f", "mp3"}, "aac": {"-f", "adts"}, "ogg": {"-f", "ogg"}, "opus": {"-f", "opus"},
	"wav": {"-f", "wav"}, "flac": {"-f", "flac"},
	"jpeg": {"-f", "image2", "-update", "1"}, "png": {"-f", "image2", "-update", "1"},
	"webp": {"-f", "webp"}, "gif": {"-f", "gif"}, "avif": {"-f", "avif"},
	// The video parts of a split encode.
	"nut": {"-f", "nut"},
}

func muxer(format string) ([]string, error) {
	m, ok := muxers[format]
	if !ok {
		return nil, fmt.Errorf("no muxer for format %q", format)
	}
	return m, nil
}

// seconds formats a time for ffmpeg with millisecond precision.
func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

// kbits formats a bitrate in bits per second for ffmpeg.
func kbits(bps int64) string {
	if bps%1000 == 0 {
		return strconv.FormatInt(bps/1000, 10) + "k"
	}
	return strconv.FormatInt(bps, 10)
}

func audioStreamArgs(a *encoders.AudioPlan, spec string) []string {
	out := []string{"-c:a" + spec, a.Encoder}
	if a.Bitrate > 0 {
		out = append(out, "-b:a"+spec, kbits(a.Bitrate))
	}
	if a.VBRQuality != nil {
		out = append(out, "-q:a"+spec, strconv.Itoa(*a.VBRQuality))
	}
	if a.Channels > 0 {
		out = append(out, "-ac"+spec, strconv.Itoa(a.Channels))
	}
	return out
}

func audioArgs(p encoders.Plan) ([]string, error) {
	if p.Audio == nil {
		return nil, fmt.Errorf("audio plan missing")
	}
	a := []string{"-map", "0:a:0", "-vn", "-sn", "-dn"}
	a = append(a, audioStreamArgs(p.Audio, "")...)
	m, err := muxer(p.Format)
	if err != nil {
		return nil, err
	}
	return append(a, m...), nil
}
