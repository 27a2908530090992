package encoders

import (
	"fmt"
	"math"
	"strings"

	"github.com/ittybit-oss/ittybit"
)

// Geometry is how the source picture becomes the output frame: scaled to
// ScaleWidth × ScaleHeight, then padded (contain) or cropped (cover) to
// Width × Height at offset X, Y.
type Geometry struct {
	Width       int    `json:"width"`  // output frame, pixels
	Height      int    `json:"height"` // output frame, pixels
	ScaleWidth  int    `json:"scale_width"`
	ScaleHeight int    `json:"scale_height"`
	Fit         string `json:"fit"`
	// X, Y place the scaled picture in the frame (contain: pad offset) or
	// the frame in the scaled picture (cover: crop offset).
	X          int    `json:"x,omitempty"`
	Y          int    `json:"y,omitempty"`
	Background string `json:"background,omitempty"` // contain: the bars' color, "#rrggbb"
}

// Padded reports whether the frame has bars around the picture.
func (g Geometry) Padded() bool {
	return g.Fit == FitContain && (g.ScaleWidth != g.Width || g.ScaleHeight != g.Height)
}

// Cropped reports whether the picture is cut to the frame.
func (g Geometry) Cropped() bool {
	return g.Fit == FitCover && (g.ScaleWidth != g.Width || g.ScaleHeight != g.Height)
}

// resolveGeometry computes the output frame for a source seen as srcW ×
// srcH pixels with pixel aspect sar. width and height are the requested
// sizes (nil: not given). even rounds every size and offset to even numbers,
// as 4:2:0 video needs.
func resolveGeometry(srcW, srcH int, sar float64, width, height *Dimension, fit, position, background string, even bool) (Geometry, error) {
	if srcW <= 0 || srcH <= 0 {
		return Geometry{}, ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the source has no picture size")
	}
	if sar <= 0 {
		sar = 1
	}
	dw, dh := float64(srcW)*sar, float64(srcH)
	aspect := dw / dh
	resolve := func(d *Dimension, of float64) float64 {
		if d.Percent != 0 {
			return of * d.Percent / 100
		}
		return float64(d.Pixels)
	}
	round := func(x float64) int { return roundSize(x, even) }

	g := Geometry{Fit: fit}
	switch {
	case width == nil && height == nil:
		g.Width, g.Height = round(dw), round(dh)
		g.ScaleWidth, g.ScaleHeight = g.Width, g.Height
		g.Fit = FitFill
	case height == nil:
		w := resolve(width, dw)
		g.Width, g.Height = round(w), round(w/aspect)
		g.ScaleWidth, g.ScaleHeight = g.Width, g.Height
		g.Fit = FitFill
	case width == nil:
		h := resolve(height, dh)
		g.Width, g.Height = round(h*aspect), round(h)
		g.ScaleWidth, g.ScaleHeight = g.Width, g.Height
		g.Fit = FitFill
	default:
		bw, bh := round(resolve(width, dw)), round(resolve(height, dh))
		g.Width, g.Height = bw, bh
		switch fit {
		case FitFill:
			g.ScaleWidth, g.ScaleHeight = bw, bh
		case FitCover:
			s := math.Max(float64(bw)/dw, float64(bh)/dh)
			g.ScaleWidth, g.ScaleHeight = max(round(dw*s), bw), max(round(dh*s), bh)
			fx, fy := placement(position)
			g.X = offset(g.ScaleWidth-bw, fx, even)
			g.Y = offset(g.ScaleHeight-bh, fy, even)
		default: // contain
			g.Fit = FitContain
			s := math.Min(float64(bw)/dw, float64(bh)/dh)
			g.ScaleWidth, g.ScaleHeight = min(round(dw*s), bw), min(round(dh*s), bh)
			fx, fy := placement(position)
			g.X = offset(bw-g.ScaleWidth, fx, even)
			g.Y = offset(bh-g.ScaleHeight, fy, even)
			if g.Padded() {
				g.Background = normalizeColor(background)
			}
		}
	}
	for _, side := range []struct {
		name string
		v    int
	}{{"width", g.Width}, {"height", g.Height}, {"scaled width", g.ScaleWidth}, {"scaled height", g.ScaleHeight}} {
		if side.v > MaxDimension {
			return Geometry{}, ittybit.Errorf(ittybit.ErrUnsupportedMedia, "the output %s would be %d pixels (from a %d×%d source), above the largest size, %d", side.name, side.v, srcW, srcH, MaxDimension)
		}
	}
	return g, nil
}

// roundSize rounds a size to whole pixels, or to even pixels with halves
// going down, and never below the smallest size.
func roundSize(x float64, even bool) int {
	if !even {
		return max(int(math.Round(x)), 1)
	}
	h := x / 2
	n := math.Floor(h)
	if h-n > 0.5 {
		n++
	}
	return max(int(n)*2, 2)
}

// offset places a span of free pixels by fraction f (0 start, 0.5 middle,
// 1 end), even when asked.
func offset(free int, f float64, even bool) int {
	if free <= 0 {
		return 0
	}
	o := int(math.Floor(float64(free) * f))
	if even {
		o &^= 1
	}
	return o
}

// placement maps a position name to horizontal and vertical fractions.
func placement(position string) (fx, fy float64) {
	fx, fy = 0.5, 0.5
	for _, part := range strings.Split(position, "_") {
		switch part {
		case "top":
			fy = 0
		case "bottom":
			fy = 1
		case "left":
			fx = 0
		case "right":
			fx = 1
		}
	}
	return fx, fy
}

// normalizeColor turns "#abc" or "#AABBCC" into "#aabbcc"; "" is black.
func normalizeColor(c string) string {
	c = strings.ToLower(strings.TrimPrefix(c, "#"))
	switch len(c) {
	case 3:
		return fmt.Sprintf("#%c%c%c%c%c%c", c[0], c[0], c[1], c[1], c[2], c[2])
	case 6:
		return "#" + c
	}
	return "#000000"
}
