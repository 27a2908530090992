// Package probe reads what a media file holds with ffprobe (its JSON report
// read into gopkg.in/vansante/go-ffprobe.v2's types) into an
// encoders.MediaInfo.
//
// Untrusted media is probed only from a local file, with ffprobe limited to
// the file protocol and to the demuxers of Demuxers, so a crafted file
// cannot make ffprobe open playlists, other files or URLs; and with its
// decoders limited to encoders.MaxSourcePixels, so a file announcing a huge
// picture is refused from its header.
package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/vansante/go-ffprobe.v2"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Demuxers is the allow-list of container formats ittybit reads: media
// containers and single images. It leaves out every playlist or reference
// format that can open other files or URLs (hls, dash, concat, tee, …) and
// the text formats that render files into video (tty, xbin and the like).
// image2, which ffmpeg picks for a .jpg or .png by its name, is read with
// its pattern matching off, so it opens the one file named.
var Demuxers = []string{
	"mov", "mp4", "m4a", "3gp", "3g2", "mj2", // mov,mp4,m4a,3gp,3g2,mj2
	"matroska", "webm", "avi", "flv", "mpegts", "mpeg", "mxf", "asf", "ogg",
	"wav", "w64", "aiff", "mp3", "aac", "flac", "caf", "amr", "ac3", "eac3",
	"dts", "truehd", "wv", "ape", "tta", "au",
	"h264", "hevc", "ivf", "obu", "m4v", "mpegvideo",
	"gif", "apng", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe",
	"tiff_pipe", "avif", "image2",
}

// SafeInputArgs are the ffmpeg/ffprobe input options that confine reading to
// one local file in an allowed format, and decoding to pictures within
// encoders.MaxSourcePixels. They go before "-i".
func SafeInputArgs() []string {
	return []string{"-protocol_whitelist", "file", "-format_whitelist", strings.Join(Demuxers, ","),
		"-max_pixels", strconv.Itoa(encoders.MaxSourcePixels)}
}

// Args is the ffprobe command line Probe runs on path.
func Args(path string) []string {
	// ffprobe ignores -pattern_type for the demuxers that lack it.
	argv := append([]string{"ffprobe", "-loglevel", "fatal", "-print_format", "json", "-show_format", "-show_streams", "-show_chapters",
		"-loglevel", "error", "-pattern_type", "none"}, SafeInputArgs()...)
	return append(argv, path)
}

// Prober runs ffprobe on local files.
type Prober struct {
	// Timeout bounds one probe; 0 means 60 seconds.
	Timeout time.Duration
	// Trace, when set, is called with each command line before it runs.
	Trace func(argv []string)
}

// Probe reads the local file at path. Errors are *ittybit.Error values of
// kind ErrInvalidMedia for files ffprobe cannot read or formats outside
// Demuxers, and ErrUnsupportedMedia for a picture over
// encoders.MaxSourcePixels (found from the header, before decoding).
func (p *Prober) Probe(ctx context.Context, path string) (encoders.MediaInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInternal, "probe: %v", err)
	}
	if st.Size() == 0 {
		return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInvalidMedia, "the input is an empty file")
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	argv := Args(path)
	if p.Trace != nil {
		p.Trace(argv)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInvalidMedia, "probing the input took longer than %s", timeout)
		}
		return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrCancelled, "probe cancelled")
	}
	// A picture over the budget is refused before anything decodes it:
	// ffprobe's decoder stops at the header (-max_pixels) and says so,
	// though the exit status may be 0.
	if e := pictureTooLarge(stderr.String()); e != nil {
		return encoders.MediaInfo{}, e
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInternal, "run ffprobe: %v", err)
		}
		return encoders.MediaInfo{}, probeError(hidePath(stderr.String(), path))
	}
	info, err := Parse(stdout.Bytes())
	if err != nil {
		return encoders.MediaInfo{}, err
	}
	info.Filesize = st.Size()
	return info, nil
}

// hidePath keeps this node's file layout out of messages that reach API
// users: ffprobe names the file it read.
func hidePath(msg, path string) string {
	msg = strings.ReplaceAll(msg, path+": ", "")
	return strings.ReplaceAll(msg, path, filepath.Base(path))
}

// pictureSize matches what ffmpeg's image checks say of a picture too large
// to decode: over -max_pixels, or over its own absolute limit.
var pictureSize = regexp.MustCompile(`Picture size (\d+)x(\d+) (?:exceeds|is invalid)`)

// pictureTooLarge reads ffprobe's messages for a picture over the budget.
func pictureTooLarge(stderr string) error {
	m := pictureSize.FindStringSubmatch(stderr)
	if m == nil {
		return nil
	}
	w, _ := strconv.ParseInt(m[1], 10, 64)
	h, _ := strconv.ParseInt(m[2], 10, 64)
	return tooManyPixels(w, h)
}

// tooManyPixels is the error of a picture over encoders.MaxSourcePixels.
func tooManyPixels(w, h int64) error {
	return ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the input's picture is %d×%d (%d megapixels), over the limit of %d megapixels (%d×%d)",
		w, h, w*h/1_000_000, encoders.MaxSourcePixels/1_000_000, 16384, 8192)
}

// probeError turns the messages of a failed ffprobe run into an
// invalid_media error that says why in ffprobe's words.
func probeError(msg string) error {
	if strings.Contains(msg, "not on whitelist") {
		name := ""
		if i, j := strings.IndexByte(msg, '['), strings.IndexByte(msg, '@'); i >= 0 && j > i {
			name = strings.TrimSpace(msg[i+1 : j])
		}
		return ittybit.Errorf(ittybit.ErrInvalidMedia, "the input is in a format that is not accepted (%s): playlists and reference formats are refused; accepted: audio and video containers and single images", name)
	}
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		last = "ffprobe could not read it"
	}
	return ittybit.Errorf(ittybit.ErrInvalidMedia, "the input is not readable media: %s", last)
}

// Convert turns ffprobe's report into a MediaInfo. It is pure: tests and
// fuzzing feed it parsed fixtures. Errors are invalid_media, and
// unsupported_media for a picture over encoders.MaxSourcePixels.
func Convert(d *ffprobe.ProbeData) (encoders.MediaInfo, error) {
	if d == nil || d.Format == nil {
		return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInvalidMedia, "ffprobe found no container format in the input")
	}
	f := d.Format
	m := encoders.MediaInfo{Format: firstName(f.FormatName), Duration: nonNeg(f.DurationSeconds)}
	if strings.Contains(f.FormatName, "matroska") && f.StartTimeSeconds > 0 && m.Duration > f.StartTimeSeconds {
		// A Matroska segment's duration runs from timestamp 0: a file
		// whose timestamps start late (a capture cut from a broadcast)
		// lasts that much less.
		m.Duration -= f.StartTimeSeconds
	}
	fmt.Sscan(f.BitRate, &m.Bitrate)
	fmt.Sscan(f.Size, &m.Filesize)
	var video, audio *ffprobe.Stream
	for _, s := range d.Streams {
		if s == nil {
			continue
		}
		switch s.CodecType {
		case "video":
			// Cover art in an audio file is a picture, not a video.
			if s.Disposition.AttachedPic == 1 {
				continue
			}
			if video == nil {
				video = s
			}
		case "audio":
			if audio == nil {
				audio = s
			}
		}
	}
	if video != nil && video.Width > 0 && video.Height > 0 {
		if int64(video.Width)*int64(video.Height) > encoders.MaxSourcePixels {
			return encoders.MediaInfo{}, tooManyPixels(int64(video.Width), int64(video.Height))
		}
		m.HasVideo = true
		m.Codecs.Video = video.CodecName
		m.Width, m.Height = video.Width, video.Height
		m.PixelFmt = video.PixFmt
		m.SampleAspect = video.SampleAspectRatio
		if m.SampleAspect == "0:1" || m.SampleAspect == "N/A" {
			m.SampleAspect = ""
		}
		m.Rotation = rotation(video)
		if m.Rotation == 90 || m.Rotation == 270 {
			m.Width, m.Height = m.Height, m.Width
		}
		rate := video.AvgFrameRate
		if r, ok := encoders.ParseRatio(rate); !ok || r <= 0 || r > 1000 {
			rate = video.RFrameRate
		}
		if r, ok := encoders.ParseRatio(rate); ok && r > 0 && r <= 1000 {
			m.FrameRate = strings.ReplaceAll(rate, ":", "/")
			m.FPS = float64(int64(r*1000+0.5)) / 1000
		}
		if avg, ok := encoders.ParseRatio(video.AvgFrameRate); ok && avg > 0 {
			if r, ok := encoders.ParseRatio(video.RFrameRate); ok && math.Abs(r-avg) > 0.001*avg {
				m.VariableFrameRate = true
			}
		}
		if st, ok := encoders.ParseRatio(video.StartTime); ok && st-f.StartTimeSeconds > 0.0005 {
			m.VideoStart = st - f.StartTimeSeconds
		}
		fmt.Sscan(video.NbFrames, &m.Frames)
		if d, ok := encoders.ParseRatio(video.Duration); ok && d > 0 {
			m.VideoDuration = d
		}
		m.Still = isStill(f.FormatName, video, m)
	}
	if audio != nil {
		m.HasAudio = true
		m.Codecs.Audio = audio.CodecName
		m.AudioChannels = audio.Channels
		fmt.Sscan(audio.SampleRate, &m.SampleRate)
		if isLosslessAudio(audio.CodecName) {
			if audio.BitsPerRawSample != "" {
				fmt.Sscan(audio.BitsPerRawSample, &m.AudioBits)
			}
			if m.AudioBits == 0 {
				m.AudioBits = audio.BitsPerSample
			}
		}
	}
	if !m.HasVideo && !m.HasAudio {
		return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInvalidMedia, "the input (%s) has no audio or video stream", m.Format)
	}
	return m, nil
}

func firstName(formatName string) string {
	name, _, _ := strings.Cut(formatName, ",")
	return name
}

func nonNeg(f float64) float64 {
	if f < 0 || f != f {
		return 0
	}
	return f
}

// rotation returns the clockwise display rotation, 0, 90, 180 or 270.
func rotation(s *ffprobe.Stream) int {
	r := 0
	if dm, err := s.SideDataList.GetDisplayMatrix(); err == nil && dm != nil {
		// ffprobe reports the counter-clockwise angle.
		r = -dm.Rotation
	} else if tag, err := s.TagList.GetString("rotate"); err == nil {
		fmt.Sscan(tag, &r)
	}
	r %= 360
	if r < 0 {
		r += 360
	}
	// Round to the nearest quarter turn; other angles are not displayable.
	return ((r + 45) / 90 % 4) * 90
}

// isStill reports whether the picture is one image rather than a video.
func isStill(formatName string, v *ffprobe.Stream, m encoders.MediaInfo) bool {
	if strings.HasSuffix(formatName, "_pipe") || formatName == "image2" {
		return true
	}
	switch v.CodecName {
	case "png", "mjpeg", "webp", "bmp", "tiff":
		return m.Frames <= 1 && m.Duration < 0.1
	}
	return false
}

func isLosslessAudio(codec string) bool {
	return codec == "flac" || codec == "alac" || codec == "wavpack" || codec == "tta" || codec == "ape" ||
		codec == "truehd" || strings.HasPrefix(codec, "pcm_")
}

// Parse reads ffprobe's JSON report (-print_format json -show_format
// -show_streams) into a MediaInfo. It is pure, for fixtures and fuzzing.
func Parse(report []byte) (encoders.MediaInfo, error) {
	var d ffprobe.ProbeData
	if err := json.Unmarshal(report, &d); err != nil {
		return encoders.MediaInfo{}, ittybit.Errorf(ittybit.ErrInvalidMedia, "unreadable ffprobe report: %v", err)
	}
	return Convert(&d)
}

// partDemuxers are what CountFrames reads besides Demuxers: NUT, the
// container of a split encode's video parts.
var partDemuxers = []string{"nut"}

// CountFrames counts the packets of the first video stream of the file at
// path, reading the whole file without decoding it: the frame count the
// container's header may get wrong (a truncated file that says it is
// long) or leave out. Each packet is one shown frame for the codecs
// ittybit writes (VP9 packs its hidden frames into superframes).
func (p *Prober) CountFrames(ctx context.Context, path string) (int64, error) {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := []string{"ffprobe", "-loglevel", "error", "-protocol_whitelist", "file",
		"-format_whitelist", strings.Join(append(slices.Clone(Demuxers), partDemuxers...), ","),
		"-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path}
	if p.Trace != nil {
		p.Trace(argv)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return 0, ittybit.Errorf(ittybit.ErrCancelled, "counting frames stopped: %v", ctx.Err())
	}
	if err != nil {
		return 0, ittybit.Errorf(ittybit.ErrInvalidMedia, "could not count the frames: %s", strings.TrimSpace(strings.ReplaceAll(stderr.String(), path, filepath.Base(path))))
	}
	n, err := strconv.ParseInt(strings.TrimSpace(stdout.String()), 10, 64)
	if err != nil {
		return 0, ittybit.Errorf(ittybit.ErrInvalidMedia, "the file has no video stream to count")
	}
	return n, nil
}
