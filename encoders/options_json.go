package encoders

import (
	"strconv"

	"github.com/ittybit-oss/ittybit/internal/jsonobj"
)

// AppendJSON appends the options' JSON, byte for byte what json.Marshal
// writes for them (the options that are set, in the order of the struct,
// a width or height as a number of pixels or a "50%" string), without
// the reflection: a server writes them for every task it is asked to
// create, to keep and to answer with. It fails where json.Marshal does,
// on a number that is infinite or not a number.
func (o *Options) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, '{')
	first := true
	name := func(n string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, n...)
		b = append(b, '"', ':')
	}
	str := func(n, v string) {
		if v != "" {
			name(n)
			b = jsonobj.AppendString(b, v)
		}
	}
	dim := func(n string, d *Dimension) {
		if d == nil {
			return
		}
		name(n)
		if d.Percent != 0 {
			b = jsonobj.AppendString(b, d.String())
		} else {
			b = strconv.AppendInt(b, int64(d.Pixels), 10)
		}
	}
	num := func(n string, f *float64) {
		if f != nil && err == nil {
			name(n)
			b, err = jsonobj.AppendFloat(b, *f)
		}
	}
	str("format", o.Format)
	str("codec", o.Codec)
	str("quality", string(o.Quality))
	dim("width", o.Width)
	dim("height", o.Height)
	str("fit", o.Fit)
	str("position", o.Position)
	str("background", o.Background)
	num("fps", o.FPS)
	if o.Bitrate != nil {
		name("bitrate")
		b = strconv.AppendInt(b, *o.Bitrate, 10)
	}
	num("start", o.Start)
	num("end", o.End)
	return append(b, '}'), err
}
