package encoders

import (
	"path"
	"slices"
	"strings"
)

// Video codecs a video task may ask for.
const (
	CodecH264 = "h264"
	CodecH265 = "h265"
	CodecVP9  = "vp9"
	CodecAV1  = "av1"
)

// VideoCodecs lists the video codecs, in the API's order.
var VideoCodecs = []string{CodecH264, CodecH265, CodecVP9, CodecAV1}

// formatRule says what one output format is: the kind it belongs to, the
// file extensions that name it (the first is the one we write), and for
// video containers the codecs it can hold, the first being the default.
type formatRule struct {
	kind   Kind
	exts   []string
	codecs []string
}

// formats is the format/codec table of the contract: h264, h265 in mp4 and
// mov; vp9 in webm; av1 in mp4 and webm.
var formats = map[string]formatRule{
	"mp4":  {KindVideo, []string{".mp4", ".m4v"}, []string{CodecH264, CodecH265, CodecAV1}},
	"webm": {KindVideo, []string{".webm"}, []string{CodecVP9, CodecAV1}},
	"mov":  {KindVideo, []string{".mov"}, []string{CodecH264, CodecH265}},

	"mp3":  {KindAudio, []string{".mp3"}, nil},
	"aac":  {KindAudio, []string{".aac"}, nil},
	"ogg":  {KindAudio, []string{".ogg", ".oga"}, nil},
	"opus": {KindAudio, []string{".opus"}, nil},
	"wav":  {KindAudio, []string{".wav"}, nil},
	"flac": {KindAudio, []string{".flac"}, nil},

	"jpeg": {KindImage, []string{".jpg", ".jpeg"}, nil},
	"png":  {KindImage, []string{".png"}, nil},
	"webp": {KindImage, []string{".webp"}, nil},
	"gif":  {KindImage, []string{".gif"}, nil},
	"avif": {KindImage, []string{".avif"}, nil},

	"hls": {KindAdaptive, []string{".m3u8"}, nil},
}

// formatOrder is the API's order of formats per kind; the first is the default.
var formatOrder = map[Kind][]string{
	KindVideo:    {"mp4", "webm", "mov"},
	KindAudio:    {"mp3", "aac", "ogg", "opus", "wav", "flac"},
	KindImage:    {"jpeg", "png", "webp", "gif", "avif"},
	KindAdaptive: {"hls"},
}

// Formats returns the output formats of kind k, the default first.
func Formats(k Kind) []string { return slices.Clone(formatOrder[k]) }

// DefaultFormat returns the format used when a task of kind k names none.
func DefaultFormat(k Kind) string {
	if fs := formatOrder[k]; len(fs) > 0 {
		return fs[0]
	}
	return ""
}

// CodecsFor returns the video codecs the container format can hold, the
// default first; nil for formats that are not video containers.
func CodecsFor(format string) []string { return slices.Clone(formats[format].codecs) }

// DefaultCodec returns the codec used for a video format when none is named.
func DefaultCodec(format string) string {
	if cs := formats[format].codecs; len(cs) > 0 {
		return cs[0]
	}
	return ""
}

// CodecAllowed reports whether the video container format can hold codec.
func CodecAllowed(format, codec string) bool {
	return slices.Contains(formats[format].codecs, codec)
}

// FormatForCodec returns the container a video codec goes in when the task
// names a codec but no format: mp4, or webm for vp9.
func FormatForCodec(codec string) string {
	for _, f := range formatOrder[KindVideo] {
		if CodecAllowed(f, codec) {
			return f
		}
	}
	return ""
}

// Extension returns the file extension written for format, with the dot.
func Extension(format string) string {
	if r, ok := formats[format]; ok {
		return r.exts[0]
	}
	return ""
}

// FormatFromName returns the format of kind k that a file name's extension
// names ("clip.webm" → "webm"), or "" when the extension names none.
func FormatFromName(k Kind, name string) string {
	ext := strings.ToLower(path.Ext(name))
	if ext == "" {
		return ""
	}
	for _, f := range formatOrder[k] {
		if slices.Contains(formats[f].exts, ext) {
			return f
		}
	}
	return ""
}

// AudioCodecFor returns the audio codec a video container carries: AAC in
// mp4 and mov, Opus in webm.
func AudioCodecFor(format string) string {
	if format == "webm" {
		return "opus"
	}
	return "aac"
}

// Lossless reports whether an audio format stores samples exactly, so that
// a bitrate means nothing for it.
func Lossless(format string) bool { return format == "wav" || format == "flac" }
