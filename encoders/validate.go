package encoders

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit"
)

// Spec is what a task asks for: a kind of output made from an input, with
// options and an optional destination.
type Spec struct {
	Kind    Kind    `json:"kind"`
	Input   string  `json:"input"`
	Output  string  `json:"output,omitempty"`
	Options Options `json:"options"`
}

// Policy says which inputs and outputs the caller accepts.
type Policy struct {
	// InputHost, when set, judges the host of an http(s) input once the
	// URL is well formed; its *ittybit.Error is the problem reported.
	// Servers pass storage.CheckInputHost, which refuses loopback, private,
	// link-local and metadata addresses, unless an operator allows private
	// inputs. Nil admits any host.
	InputHost func(host string) error
	// LocalPaths admits a local file path as input and as output (the
	// CLI's local mode); URLs are still checked as usual.
	LocalPaths bool
}

var hexColor = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Validate checks a task request and returns every problem at once, joined
// with errors.Join; each is an *ittybit.Error whose Kind is one of the validation
// kinds of the contract and whose message names the field and says what is
// accepted. It returns nil when the request can be accepted.
func Validate(s Spec, p Policy) error {
	var errs []error
	add := func(e *ittybit.Error) { errs = append(errs, e) }

	if e := validateInput(s.Input, p); e != nil {
		add(e)
	}
	switch {
	case s.Kind == "":
		add(ittybit.FieldErrorf(ittybit.ErrInvalidKind, "kind", "kind is required; accepted: %s", kindList()))
	case !s.Kind.Valid():
		add(ittybit.FieldErrorf(ittybit.ErrInvalidKind, "kind", "kind %q is unknown; accepted: %s", s.Kind, kindList()))
	default:
		for _, e := range validateOptions(s.Kind, &s.Options, s.Output) {
			add(e)
		}
	}
	if e := validateOutput(s.Kind, &s.Options, s.Output, p.LocalPaths); e != nil {
		add(e)
	}
	return errors.Join(errs...)
}

func validateInput(in string, p Policy) *ittybit.Error {
	const accepted = "accepted: an http://, https://, or s3:// URL"
	if strings.TrimSpace(in) == "" {
		return ittybit.FieldErrorf(ittybit.ErrInputRequired, "input", "input is required: the URL of the source media; %s", accepted)
	}
	if p.LocalPaths && !hasScheme(in) {
		return nil
	}
	u, err := url.Parse(in)
	if err != nil {
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input is not a valid URL (%s); %s", urlErrText(err), accepted)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "s3":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" || strings.HasSuffix(u.Path, "/") {
			return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input %q must name an object: s3://bucket/key", in)
		}
		return nil
	case "":
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input must use http://, https://, or s3:// scheme; got %q with no scheme", in)
	default:
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input must use http://, https://, or s3:// scheme; got %s://", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input %q has no host; %s", in, accepted)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input port %q is not a port number from 1 to 65535", port)
		}
	}
	if p.InputHost != nil {
		if err := p.InputHost(host); err != nil {
			var e *ittybit.Error
			if errors.As(err, &e) {
				return e
			}
			return ittybit.FieldErrorf(ittybit.ErrInvalidInput, "input", "input host %s: %v", host, err)
		}
	}
	return nil
}

func urlErrText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$`)

func validateOutput(k Kind, o *Options, out string, local bool) *ittybit.Error {
	if out == "" {
		return nil
	}
	if local && !hasScheme(out) {
		return checkOutputExt(k, o, out, out)
	}
	u, err := url.Parse(out)
	if err != nil || !strings.EqualFold(u.Scheme, "s3") || u.Host == "" || strings.Trim(u.Path, "/") == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		return ittybit.FieldErrorf(ittybit.ErrInvalidOutput, "output", "output must be an s3://bucket/key URL; got %q", out)
	}
	if !bucketName.MatchString(u.Host) {
		return ittybit.FieldErrorf(ittybit.ErrInvalidOutput, "output", "output bucket %q is not a valid bucket name: 3 to 63 lowercase letters, digits, dots and hyphens", u.Host)
	}
	if !k.Valid() || strings.HasSuffix(u.Path, "/") {
		return nil
	}
	return checkOutputExt(k, o, out, u.Path)
}

// checkOutputExt refuses an output whose name's extension names a format
// other than the one the task makes ("out.webm" for an mp4).
func checkOutputExt(k Kind, o *Options, out, name string) *ittybit.Error {
	if !k.Valid() {
		return nil
	}
	format := Defaults(k, *o, out).Format
	if named := formatOfExt(name); named != "" && named != format && slices.Contains(formatOrder[k], format) {
		hint := "set format to " + named
		if formats[named].kind != k {
			hint = named + " is a " + string(formats[named].kind) + " format"
		}
		return ittybit.FieldErrorf(ittybit.ErrInvalidOutput, "output", "output %q ends in %s but the format is %s; name it %s, or %s",
			out, strings.ToLower(pathExt(name)), format, Extension(format), hint)
	}
	return nil
}

// hasScheme reports whether s starts with a URL scheme ("s3://", "http:").
func hasScheme(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, c := range s[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// formatOfExt returns the format of any kind that the name's extension names.
func formatOfExt(name string) string {
	for _, k := range Kinds {
		if f := FormatFromName(k, name); f != "" {
			return f
		}
	}
	return ""
}

func pathExt(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 && !strings.Contains(p[i:], "/") {
		return p[i:]
	}
	return ""
}

// validateOptions checks the options of a known kind.
func validateOptions(k Kind, o *Options, out string) []*ittybit.Error {
	var errs []*ittybit.Error
	add := func(kind ittybit.ErrorKind, field, format string, args ...any) {
		errs = append(errs, ittybit.FieldErrorf(kind, field, format, args...))
	}
	allowed := kindOptions[k]
	if o.notObject {
		add(ittybit.ErrInvalidOption, "options", `options must be a JSON object such as {"format": %q}; accepted options for %s: %s`,
			DefaultFormat(k), k, strings.Join(allowed, ", "))
		return errs
	}
	for _, name := range o.unknown {
		add(ittybit.ErrInvalidOption, name, "unknown option %q for %s; accepted: %s", name, k, strings.Join(allowed, ", "))
	}
	var names [16]string // the twelve options and a few bad ones: on the stack
	present := o.appendGiven(names[:0])
	for name := range o.bad {
		present = append(present, name)
	}
	slices.SortFunc(present, func(a, b string) int { return slices.Index(optionNames, a) - slices.Index(optionNames, b) })
	for _, name := range present {
		if !slices.Contains(allowed, name) {
			add(ittybit.ErrInvalidOption, name, "%s is not an option of %s; accepted: %s", name, k, strings.Join(allowed, ", "))
		}
	}
	for _, name := range present {
		raw, bad := o.bad[name]
		if !bad || !slices.Contains(allowed, name) {
			continue
		}
		kind := ittybit.ErrInvalidOption
		switch name {
		case "format":
			kind = ittybit.ErrInvalidFormat
		case "codec":
			kind = ittybit.ErrInvalidCodec
		}
		add(kind, name, "%s must be %s; got %s", name, accepts(k, name), compact(raw))
	}
	has := func(name string) bool { return slices.Contains(allowed, name) && o.bad[name] == nil }

	if has("format") && o.Format != "" && !slices.Contains(formatOrder[k], o.Format) {
		msg := fmt.Sprintf("format %q is not a %s format; accepted: %s", o.Format, k, strings.Join(formatOrder[k], ", "))
		if f, ok := formats[o.Format]; ok && f.kind != k {
			msg += fmt.Sprintf(" (%s is a %s format)", o.Format, f.kind)
		}
		add(ittybit.ErrInvalidFormat, "format", "%s", msg)
	}
	if has("codec") && o.Codec != "" {
		format := Defaults(k, *o, out).Format
		switch {
		case !slices.Contains(VideoCodecs, o.Codec):
			add(ittybit.ErrInvalidCodec, "codec", "codec %q is unknown; accepted: %s", o.Codec, strings.Join(VideoCodecs, ", "))
		case slices.Contains(formatOrder[k], format) && !CodecAllowed(format, o.Codec):
			add(ittybit.ErrInvalidCodec, "codec", "codec %s cannot go in %s; %s takes %s, and %s goes in %s",
				o.Codec, format, format, strings.Join(formats[format].codecs, ", "), o.Codec, strings.Join(containersOf(o.Codec), " or "))
		}
	}
	if has("quality") && o.Quality != "" && o.Quality.index() < 0 {
		add(ittybit.ErrInvalidOption, "quality", "quality %q is unknown; accepted: %s", o.Quality, accepts(k, "quality"))
	}
	for _, d := range []struct {
		name string
		v    *Dimension
	}{{"width", o.Width}, {"height", o.Height}} {
		if !has(d.name) || d.v == nil {
			continue
		}
		if d.v.Percent != 0 {
			if d.v.Percent < 0 || d.v.Percent > MaxPercent {
				add(ittybit.ErrInvalidOption, d.name, "%s %s is out of range; a percentage must be more than 0%% and at most %d%%", d.name, d.v, MaxPercent)
			}
		} else if d.v.Pixels < 1 || d.v.Pixels > MaxDimension {
			add(ittybit.ErrInvalidOption, d.name, "%s %d is out of range; accepted: %s", d.name, d.v.Pixels, accepts(k, d.name))
		}
	}
	if has("fit") && o.Fit != "" && !slices.Contains(Fits, o.Fit) {
		add(ittybit.ErrInvalidOption, "fit", "fit %q is unknown; accepted: %s", o.Fit, strings.Join(Fits, ", "))
	}
	if has("position") && o.Position != "" && !slices.Contains(Positions, o.Position) {
		add(ittybit.ErrInvalidOption, "position", "position %q is unknown; accepted: %s", o.Position, strings.Join(Positions, ", "))
	}
	if has("background") && o.Background != "" {
		if !hexColor.MatchString(o.Background) {
			add(ittybit.ErrInvalidOption, "background", "background %q is not a hex color; accepted: %s", o.Background, accepts(k, "background"))
		}
		if o.Fit != FitContain {
			got := "no fit"
			if o.Fit != "" {
				got = fmt.Sprintf("fit %q", o.Fit)
			}
			add(ittybit.ErrInvalidOption, "background", `background is only used with fit "contain" (it fills the bars around the picture); got %s: set "fit": "contain" or remove background`, got)
		}
	}
	if has("fps") && o.FPS != nil && (*o.FPS < MinFPS || *o.FPS > MaxFPS) {
		add(ittybit.ErrInvalidOption, "fps", "fps %s is out of range; accepted: %s", num(*o.FPS), accepts(k, "fps"))
	}
	if has("bitrate") && o.Bitrate != nil {
		lo, hi := bitrateRange(k)
		switch {
		case *o.Bitrate < lo || *o.Bitrate > hi:
			add(ittybit.ErrInvalidOption, "bitrate", "bitrate %d is out of range; accepted: %s", *o.Bitrate, accepts(k, "bitrate"))
		case k == KindAudio && Lossless(Defaults(k, *o, out).Format):
			add(ittybit.ErrInvalidOption, "bitrate", "bitrate does not apply to %s, a lossless format; remove it or pick a lossy format (mp3, aac, ogg, opus)", Defaults(k, *o, out).Format)
		}
	}
	for _, t := range []struct {
		name string
		v    *float64
	}{{"start", o.Start}, {"end", o.End}} {
		if has(t.name) && t.v != nil && (*t.v < 0 || *t.v > MaxSeconds || (t.name == "end" && *t.v == 0)) {
			add(ittybit.ErrInvalidOption, t.name, "%s %s is out of range; accepted: %s", t.name, num(*t.v), accepts(k, t.name))
		}
	}
	if has("start") && has("end") && o.Start != nil && o.End != nil && *o.End <= *o.Start && *o.End > 0 {
		add(ittybit.ErrInvalidOption, "end", "end (%s s) must be after start (%s s)", num(*o.End), num(*o.Start))
	}
	return errs
}

func containersOf(codec string) []string {
	var out []string
	for _, f := range formatOrder[KindVideo] {
		if CodecAllowed(f, codec) {
			out = append(out, f)
		}
	}
	return out
}

func bitrateRange(k Kind) (int64, int64) {
	if k == KindAudio {
		return MinAudioBitrate, MaxAudioBitrate
	}
	return MinVideoBitrate, MaxVideoBitrate
}

// accepts describes the values option name takes for kind k.
func accepts(k Kind, name string) string {
	switch name {
	case "format":
		return "one of " + strings.Join(formatOrder[k], ", ")
	case "codec":
		return "one of " + strings.Join(VideoCodecs, ", ")
	case "quality":
		qs := make([]string, len(Qualities))
		for i, q := range Qualities {
			qs[i] = string(q)
		}
		return "one of " + strings.Join(qs, ", ")
	case "width", "height":
		return fmt.Sprintf(`a whole number of pixels from 1 to %d, or a percentage of the source such as "50%%" (up to %d%%)`, MaxDimension, MaxPercent)
	case "fit":
		return "one of " + strings.Join(Fits, ", ")
	case "position":
		return "one of " + strings.Join(Positions, ", ")
	case "background":
		return `a hex color such as "#000000" (#rgb or #rrggbb)`
	case "fps":
		return fmt.Sprintf("a number from %d to %d", MinFPS, MaxFPS)
	case "bitrate":
		lo, hi := bitrateRange(k)
		return fmt.Sprintf("a whole number of bits per second from %d to %d", lo, hi)
	case "start":
		if k == KindImage {
			return fmt.Sprintf("the frame time in seconds, a number from 0 to %d", MaxSeconds)
		}
		return fmt.Sprintf("a number of seconds from 0 to %d", MaxSeconds)
	case "end":
		return fmt.Sprintf("a number of seconds above 0 and at most %d, after start", MaxSeconds)
	}
	return "a valid value"
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// compact renders a raw JSON value for an error message, shortened.
func compact(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// Defaults returns o with every unset option that has a default filled in
// for kind k: format (from the output name, then the codec, then the kind's
// default), codec for video, quality, and fit when a box is given.
func Defaults(k Kind, o Options, output string) Options {
	if o.Format == "" {
		switch {
		case FormatFromName(k, trimQuery(output)) != "":
			o.Format = FormatFromName(k, trimQuery(output))
		case k == KindVideo && o.Codec != "" && FormatForCodec(o.Codec) != "":
			o.Format = FormatForCodec(o.Codec)
		default:
			o.Format = DefaultFormat(k)
		}
	}
	if k == KindVideo && o.Codec == "" {
		o.Codec = DefaultCodec(o.Format)
	}
	if o.Quality == "" {
		o.Quality = DefaultQuality
	}
	if o.Fit == "" && k != KindAudio {
		o.Fit = FitContain
	}
	if o.Position == "" && k != KindAudio {
		o.Position = "center"
	}
	return o
}

func trimQuery(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i]
	}
	return s
}
