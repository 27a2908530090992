package encoders

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/internal/jsonobj"
)

// Quality is one of the five quality levels of the API.
type Quality string

// The quality levels, lowest first.
const (
	QualityVeryLow  Quality = "very_low"
	QualityLow      Quality = "low"
	QualityMedium   Quality = "medium"
	QualityHigh     Quality = "high"
	QualityVeryHigh Quality = "very_high"
)

// Qualities lists the quality levels, lowest first.
var Qualities = []Quality{QualityVeryLow, QualityLow, QualityMedium, QualityHigh, QualityVeryHigh}

// DefaultQuality is used when a task names no quality.
const DefaultQuality = QualityMedium

func (q Quality) index() int {
	for i, v := range Qualities {
		if q == v {
			return i
		}
	}
	return -1
}

// Fit values: how a picture goes into a width × height box.
const (
	FitContain = "contain" // scale inside the box, pad with background
	FitCover   = "cover"   // scale to cover the box, crop at position
	FitFill    = "fill"    // stretch to the box
)

// Fits lists the fit values; the first is the default.
var Fits = []string{FitContain, FitCover, FitFill}

// Positions lists where a contained picture sits or a covered one is cropped.
var Positions = []string{
	"center", "top", "bottom", "left", "right",
	"top_left", "top_right", "bottom_left", "bottom_right",
}

// Limits of the option ranges.
const (
	MaxDimension    = 8192    // pixels, either side
	MaxPercent      = 400     // a percentage size, of the source
	MinFPS          = 1       // frames per second
	MaxFPS          = 60      // frames per second
	MinVideoBitrate = 300_000 // bits per second
	MaxVideoBitrate = 60_000_000
	MinAudioBitrate = 32_000
	MaxAudioBitrate = 320_000
	MaxSeconds      = 360_000 // start and end: 100 hours
)

// Dimension is a width or height: a number of pixels, or a percentage of the
// source's size when Percent is set.
type Dimension struct {
	Pixels  int     // when Percent is 0
	Percent float64 // 50 means half the source
}

// Px returns a Dimension of n pixels.
func Px(n int) *Dimension { return &Dimension{Pixels: n} }

// Pct returns a Dimension of p percent of the source.
func Pct(p float64) *Dimension { return &Dimension{Percent: p} }

// String renders d as the API writes it: "1280" or "50%".
func (d Dimension) String() string {
	if d.Percent != 0 {
		return strconv.FormatFloat(d.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(d.Pixels)
}

// MarshalJSON writes pixels as a number and a percentage as a string.
func (d Dimension) MarshalJSON() ([]byte, error) {
	if d.Percent != 0 {
		return json.Marshal(d.String())
	}
	return json.Marshal(d.Pixels)
}

// parseDimension reads an integer or "N%" (or a string of digits).
func parseDimension(raw json.RawMessage) (*Dimension, bool) {
	if n, ok := parseWhole(raw); ok {
		if n > math.MaxInt32 || n < math.MinInt32 {
			return nil, false
		}
		return &Dimension{Pixels: int(n)}, true
	}
	s, good := unquote(raw)
	if !good {
		return nil, false
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.TrimSpace(p) != p || f == 0 {
			return nil, false
		}
		return &Dimension{Percent: f}, true
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "px"))
	if err != nil {
		return nil, false
	}
	return &Dimension{Pixels: n}, true
}

// Options are the processing options of a task. Which apply depends on the
// kind (see OptionNames). The zero value asks for every default.
//
// Options decode from JSON without failing on a wrong value: unknown names
// and values of the wrong type are kept, and Validate reports them together
// with every other problem.
type Options struct {
	Format     string     `json:"format,omitempty"`
	Codec      string     `json:"codec,omitempty"`
	Quality    Quality    `json:"quality,omitempty"`
	Width      *Dimension `json:"width,omitempty"`
	Height     *Dimension `json:"height,omitempty"`
	Fit        string     `json:"fit,omitempty"`
	Position   string     `json:"position,omitempty"`
	Background string     `json:"background,omitempty"`
	FPS        *float64   `json:"fps,omitempty"`
	Bitrate    *int64     `json:"bitrate,omitempty"`
	Start      *float64   `json:"start,omitempty"`
	End        *float64   `json:"end,omitempty"`

	// bad holds options whose value could not be read as its type.
	bad map[string]json.RawMessage
	// unknown holds names that are no option at all.
	unknown []string
	// notObject is set when the options were not a JSON object.
	notObject bool
}

// Clone returns a deep copy of o: nothing it points to is shared.
func (o Options) Clone() Options {
	c := o
	c.Width, c.Height = clonePtr(o.Width), clonePtr(o.Height)
	c.FPS, c.Bitrate, c.Start, c.End = clonePtr(o.FPS), clonePtr(o.Bitrate), clonePtr(o.Start), clonePtr(o.End)
	c.bad = maps.Clone(o.bad)
	c.unknown = slices.Clone(o.unknown)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// optionNames is every option, in the API's order.
var optionNames = []string{
	"format", "codec", "quality", "width", "height", "fit", "position",
	"background", "fps", "bitrate", "start", "end",
}

// kindOptions is the seed's table: the options each kind accepts.
var kindOptions = map[Kind][]string{
	KindVideo:    {"format", "codec", "quality", "width", "height", "fit", "position", "background", "fps", "bitrate", "start", "end"},
	KindAudio:    {"format", "quality", "bitrate", "start", "end"},
	KindImage:    {"format", "quality", "width", "height", "fit", "position", "background", "start"},
	KindAdaptive: {"format", "quality", "width", "height", "fit", "position", "background", "start", "end"},
}

// OptionNames returns the options a task of kind k accepts, in API order.
func OptionNames(k Kind) []string {
	return append([]string(nil), kindOptions[k]...)
}

// UnmarshalJSON reads an options object. It fails only on malformed JSON;
// wrong names and values are kept for Validate.
func (o *Options) UnmarshalJSON(data []byte) error {
	*o = Options{}
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	// Twelve options and a few unknown ones fit; sorted by name, as
	// below.
	var local [16]jsonobj.Member
	if members, ok := jsonobj.Members(local[:0], data); ok {
		for _, m := range members {
			o.set(m.Name, m.Raw)
		}
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		if json.Valid(data) {
			o.notObject = true
			return nil
		}
		return err
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		o.set(name, m[name])
	}
	return nil
}

// Set sets one option from its text form, as given on a command line:
// numbers are read as numbers, anything else as a string. Like
// UnmarshalJSON it never fails; Validate reports bad names and values.
func (o *Options) Set(name, value string) {
	var raw json.RawMessage
	if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) &&
		strings.TrimSpace(value) == value && !strings.ContainsAny(value, "xXpP_") {
		raw = json.RawMessage(strconv.FormatFloat(f, 'f', -1, 64))
	} else {
		raw, _ = json.Marshal(value)
	}
	o.set(name, raw)
}

// set stores one raw value under name, clearing any earlier value.
func (o *Options) set(name string, raw json.RawMessage) {
	o.clear(name)
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return
	}
	ok := true
	str := func(dst *string) {
		s, good := unquote(raw)
		if !good || s == "" {
			ok = false
			return
		}
		*dst = s
	}
	num := func(dst **float64) {
		f, good := parseNumber(raw)
		if !good {
			ok = false
			return
		}
		*dst = &f
	}
	switch name {
	case "format":
		str(&o.Format)
	case "codec":
		str(&o.Codec)
	case "quality":
		var s string
		str(&s)
		o.Quality = Quality(s)
	case "width":
		o.Width, ok = parseDimension(raw)
	case "height":
		o.Height, ok = parseDimension(raw)
	case "fit":
		str(&o.Fit)
	case "position":
		str(&o.Position)
	case "background":
		str(&o.Background)
	case "fps":
		num(&o.FPS)
	case "bitrate":
		n, good := parseWhole(raw)
		if !good {
			ok = false
			break
		}
		o.Bitrate = &n
	case "start":
		num(&o.Start)
	case "end":
		num(&o.End)
	default:
		o.unknown = append(o.unknown, name)
		return
	}
	if !ok {
		if o.bad == nil {
			o.bad = map[string]json.RawMessage{}
		}
		o.bad[name] = append(json.RawMessage(nil), raw...)
	}
}

func (o *Options) clear(name string) {
	delete(o.bad, name)
	switch name {
	case "format":
		o.Format = ""
	case "codec":
		o.Codec = ""
	case "quality":
		o.Quality = ""
	case "width":
		o.Width = nil
	case "height":
		o.Height = nil
	case "fit":
		o.Fit = ""
	case "position":
		o.Position = ""
	case "background":
		o.Background = ""
	case "fps":
		o.FPS = nil
	case "bitrate":
		o.Bitrate = nil
	case "start":
		o.Start = nil
	case "end":
		o.End = nil
	default:
		for i, n := range o.unknown {
			if n == name {
				o.unknown = append(o.unknown[:i], o.unknown[i+1:]...)
				break
			}
		}
	}
}

// appendGiven appends the names of the well-typed options that are set, in
// the order of optionNames.
func (o *Options) appendGiven(out []string) []string {
	for _, n := range optionNames {
		if o.isSet(n) {
			out = append(out, n)
		}
	}
	return out
}

// isSet reports whether the well-typed option name is set.
func (o *Options) isSet(name string) bool {
	switch name {
	case "format":
		return o.Format != ""
	case "codec":
		return o.Codec != ""
	case "quality":
		return o.Quality != ""
	case "width":
		return o.Width != nil
	case "height":
		return o.Height != nil
	case "fit":
		return o.Fit != ""
	case "position":
		return o.Position != ""
	case "background":
		return o.Background != ""
	case "fps":
		return o.FPS != nil
	case "bitrate":
		return o.Bitrate != nil
	case "start":
		return o.Start != nil
	case "end":
		return o.End != nil
	}
	return false
}

// parseNumber reads a JSON number (not a string holding one).
func parseNumber(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if !isJSONNumber(raw) {
		return 0, false // a quoted number is a string, not a number
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// isJSONNumber reports whether b is exactly one number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(b []byte) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(b)
}

// unquote reads a JSON string. Strings without escapes, the common case,
// are taken as they are; the rest go through encoding/json.
func unquote(raw json.RawMessage) (string, bool) {
	var s string
	ok := jsonobj.String(raw, &s)
	return s, ok
}

// parseWhole reads a JSON number that is a whole number ("1.5e6" is).
func parseWhole(raw json.RawMessage) (int64, bool) {
	f, ok := parseNumber(raw)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}
