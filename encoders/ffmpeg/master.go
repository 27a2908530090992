package ffmpeg

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Segment is one media segment of a rendition's playlist.
type Segment struct {
	URI      string
	Duration float64 // seconds, from #EXTINF
}

// MediaPlaylist is what ffmpeg wrote for one rendition.
type MediaPlaylist struct {
	Map      string // the EXT-X-MAP init segment URI, for fMP4
	Segments []Segment
}

// ParseMediaPlaylist reads an HLS media playlist: its init segment and its
// segments with their durations.
func ParseMediaPlaylist(data []byte) (MediaPlaylist, error) {
	var pl MediaPlaylist
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	pending := -1.0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if line != "#EXTM3U" {
				return MediaPlaylist{}, errors.New("not an HLS playlist: no #EXTM3U header")
			}
			first = false
			continue
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			d, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || d < 0 || math.IsInf(d, 0) || math.IsNaN(d) {
				return MediaPlaylist{}, fmt.Errorf("bad segment duration %q", v)
			}
			pending = d
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			uri, ok := attr(strings.TrimPrefix(line, "#EXT-X-MAP:"), "URI")
			if !ok {
				return MediaPlaylist{}, errors.New("EXT-X-MAP without URI")
			}
			pl.Map = uri
		case strings.HasPrefix(line, "#"):
		default:
			if pending < 0 {
				return MediaPlaylist{}, fmt.Errorf("segment %q without #EXTINF", line)
			}
			pl.Segments = append(pl.Segments, Segment{URI: line, Duration: pending})
			pending = -1
		}
	}
	if first {
		return MediaPlaylist{}, errors.New("empty playlist")
	}
	return pl, sc.Err()
}

// attr reads a quoted or bare attribute from an attribute list.
func attr(list, name string) (string, bool) {
	for list != "" {
		key, rest, ok := strings.Cut(list, "=")
		if !ok {
			return "", false
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return "", false
			}
			val, rest = rest[1:1+end], rest[2+end:]
			rest = strings.TrimPrefix(rest, ",")
		} else {
			val, rest, _ = strings.Cut(rest, ",")
		}
		if strings.TrimSpace(key) == name {
			return val, true
		}
		list = rest
	}
	return "", false
}

// Rates are a rendition's measured bitrates, from its segments' sizes.
type Rates struct {
	Peak    int64 // the highest segment bitrate, bits per second
	Average int64 // all segment bits over all segment time
}

// MeasureRates computes peak and average bitrates from segments and their
// sizes in bytes (sizes[i] belongs to segs[i]).
func MeasureRates(segs []Segment, sizes []int64) Rates {
	var bits, secs float64
	var r Rates
	for i, s := range segs {
		if i >= len(sizes) || s.Duration <= 0 {
			continue
		}
		b := float64(sizes[i]) * 8
		bits += b
		secs += s.Duration
		// A very short last segment would overstate the peak; judge it over
		// at least one second.
		if rate := int64(math.Ceil(b / math.Max(s.Duration, math.Min(1, secs)))); rate > r.Peak {
			r.Peak = rate
		}
	}
	if secs > 0 {
		r.Average = int64(math.Ceil(bits / secs))
	}
	return r
}

// Variant is one #EXT-X-STREAM-INF entry of a master playlist.
type Variant struct {
	URI              string
	Bandwidth        int64 // peak, including the audio rendition
	AverageBandwidth int64
	Width, Height    int
	FrameRate        float64
	Codecs           string // "avc1.64001f,mp4a.40.2"
	Audio            string // audio group ID, or ""
}

// AudioRendition is one #EXT-X-MEDIA audio entry.
type AudioRendition struct {
	GroupID  string
	Name     string
	URI      string
	Channels int
	Default  bool
}

// Master is a multivariant playlist.
type Master struct {
	Variants []Variant
	Audio    []AudioRendition
}

// defaultStartBitrate is the variant Apple asks to list first (1.32).
const defaultStartBitrate = 2_000_000

// WriteMaster writes m as an HLS multivariant playlist with the attributes
// Apple's authoring spec requires (BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION,
// CODECS, FRAME-RATE). The variant nearest 2 Mbit/s comes first, as players
// start with the first; the others follow, highest first.
func WriteMaster(w io.Writer, m Master) error {
	if len(m.Variants) == 0 {
		return errors.New("master playlist without variants")
	}
	for _, v := range m.Variants {
		if err := checkURI(v.URI); err != nil {
			return err
		}
		if v.Bandwidth <= 0 || v.Width <= 0 || v.Height <= 0 || strings.ContainsAny(v.Codecs, "\"\n\r") || strings.ContainsAny(v.Audio, "\"\n\r") {
			return fmt.Errorf("variant %q lacks bandwidth, resolution or has bad attributes", v.URI)
		}
	}
	for _, a := range m.Audio {
		if err := checkURI(a.URI); err != nil {
			return err
		}
		if strings.ContainsAny(a.GroupID+a.Name, "\"\n\r") {
			return fmt.Errorf("audio rendition %q has bad attributes", a.URI)
		}
	}
	vs := append([]Variant(nil), m.Variants...)
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Bandwidth > vs[j].Bandwidth })
	start := 0
	for i, v := range vs {
		if math.Abs(float64(v.Bandwidth-defaultStartBitrate)) < math.Abs(float64(vs[start].Bandwidth-defaultStartBitrate)) {
			start = i
		}
	}
	vs = append(append([]Variant{vs[start]}, vs[:start]...), vs[start+1:]...)

	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for _, a := range m.Audio {
		def := "NO"
		if a.Default {
			def = "YES"
		}
		fmt.Fprintf(&b, `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="%s",NAME="%s",DEFAULT=%s,AUTOSELECT=YES`, a.GroupID, a.Name, def)
		if a.Channels > 0 {
			fmt.Fprintf(&b, `,CHANNELS="%d"`, a.Channels)
		}
		fmt.Fprintf(&b, ",URI=\"%s\"\n", a.URI)
	}
	for _, v := range vs {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,RESOLUTION=%dx%d", v.Bandwidth, v.AverageBandwidth, v.Width, v.Height)
		if v.FrameRate > 0 {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", v.FrameRate)
		}
		if v.Codecs != "" {
			fmt.Fprintf(&b, `,CODECS="%s"`, v.Codecs)
		}
		if v.Audio != "" {
			fmt.Fprintf(&b, `,AUDIO="%s"`, v.Audio)
		}
		b.WriteString("\n" + v.URI + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func checkURI(uri string) error {
	if uri == "" || strings.ContainsAny(uri, "\"\n\r") || strings.HasPrefix(uri, "#") {
		return fmt.Errorf("bad playlist URI %q", uri)
	}
	return nil
}

// AVCCodecString reads the RFC 6381 codec string ("avc1.64001f") from the
// avcC box of an fMP4 init segment or MP4 file.
func AVCCodecString(init []byte) (string, bool) {
	i := bytes.Index(init, []byte("avcC"))
	if i < 4 || len(init) < i+8 {
		return "", false
	}
	// The box size comes before the type; the record starts with version 1.
	if size := binary.BigEndian.Uint32(init[i-4 : i]); size < 15 || init[i+4] != 1 {
		return "", false
	}
	return fmt.Sprintf("avc1.%02x%02x%02x", init[i+5], init[i+6], init[i+7]), true
}
