package ffmpeg

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/encoders"
)

// progressParser reads ffmpeg's -progress output: blocks of key=value
// lines, each ended by "progress=continue" or "progress=end".
type progressParser struct {
	duration float64 // planned output seconds; 0 when unknown
	frames   int64   // planned output frames; 0 when unknown
	cur      encoders.Progress
	last     float64
	// size is the bytes the muxer wrote (total_size), -1 when ffmpeg
	// reports none (the image2 muxer); ended is set by "progress=end".
	size  int64
	ended bool
}

// Report is what ffmpeg said of its output in its last progress block.
type Report struct {
	// Frames is the video frames written, MediaSeconds the output's
	// media time.
	Frames       int64
	MediaSeconds float64
	// Size is the bytes the muxer wrote, -1 when ffmpeg did not say.
	Size int64
	// Ended: ffmpeg reported progress=end, having finished its output.
	Ended bool
}

// feed reads r to its end, calling emit once per block.
func (p *progressParser) feed(r io.Reader, emit func(encoders.Progress)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		if done := p.line(key, strings.TrimSpace(val)); done && emit != nil {
			emit(p.cur)
		}
	}
	// Drain anything left so ffmpeg never blocks writing.
	_, _ = io.Copy(io.Discard, r)
}

// line takes one key=value pair and reports whether it ended a block.
func (p *progressParser) line(key, val string) bool {
	switch key {
	case "frame":
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
			p.cur.Frames = n
		}
	case "out_time_us", "out_time_ms": // both are microseconds in ffmpeg
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
			p.cur.MediaSeconds = float64(n) / 1e6
		}
	case "total_size":
		p.size = -1
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
			p.size = n
		}
	case "speed":
		if f, err := strconv.ParseFloat(strings.TrimSuffix(val, "x"), 64); err == nil && f >= 0 {
			p.cur.Speed = f
		}
	case "progress":
		f := 0.0
		switch {
		case val == "end":
			f = 1
			p.ended = true
		case p.duration > 0:
			f = p.cur.MediaSeconds / p.duration
		case p.frames > 0:
			f = float64(p.cur.Frames) / float64(p.frames)
		}
		// Never backwards, and 1 only when ffmpeg says it is done.
		f = min(max(f, p.last), 1)
		if f == 1 && val != "end" {
			f = 0.999
		}
		p.last = f
		p.cur.Fraction = f
		return true
	}
	return false
}
