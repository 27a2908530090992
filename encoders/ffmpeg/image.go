package ffmpeg

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit/encoders"
)

func imageArgs(p encoders.Plan) ([]string, error) {
	v := p.Video
	if v == nil {
		return nil, fmt.Errorf("image plan missing")
	}
	f := pictureFilters(v, p.Source)
	if v.PixelFormat != "" {
		f = append(f, "format="+v.PixelFormat)
	}
	chain := strings.Join(f, ",")
	if p.Format == "gif" {
		// A palette made for this frame, not GIF's fixed web palette.
		chain += ",split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse"
	}
	a := []string{"-map", "0:v:0", "-vf", chain, "-frames:v", "1", "-an", "-sn", "-dn", "-c:v", v.Encoder}
	rc := v.Rate
	switch v.Encoder {
	case "mjpeg":
		a = append(a, "-q:v", strconv.Itoa(rc.Value))
	case "libwebp":
		a = append(a, "-quality", strconv.Itoa(rc.Value))
	case "libaom-av1":
		a = append(a, "-crf", strconv.Itoa(rc.Value), "-b:v", "0", "-cpu-used", v.Preset, "-still-picture", "1")
	}
	m, err := muxer(p.Format)
	if err != nil {
		return nil, err
	}
	return append(a, m...), nil
}
