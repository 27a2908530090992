package ffmpeg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/webp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// An image or audio result is described without a second ffprobe: the
// plan says what was asked (an image's frame size and format, a sound's
// codec), ffmpeg's last progress block what it wrote (the media time, the
// bytes the muxer wrote, that it reached the end), and a check of the file
// that it is what ffmpeg says: a picture decodes (or, for AVIF, its boxes
// add up to the file) at the planned size; a sound file holds exactly the
// bytes the muxer wrote. A ffprobe process costs about as much as the
// whole encode of a thumbnail, so small tasks cost one probe and one
// encode. Video results are still probed: their encode dwarfs it.

// describe returns the result of an image or audio encode written at path
// (size bytes), or ok false for a kind it leaves to the probe.
func describe(p encoders.Plan, rep Report, path string, size int64) (f encoders.File, ok bool, err error) {
	base := encoders.File{Object: "file", Kind: string(p.Kind), URL: path, Format: p.Format, Filesize: size}
	switch {
	case p.Kind == encoders.KindImage && p.Video != nil:
		if !rep.Ended || rep.Frames < 1 {
			return f, true, ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg ended without writing the picture")
		}
		if err := checkImage(path, p.Format, p.Video.Width, p.Video.Height); err != nil {
			return f, true, ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg wrote a broken picture: %v", err)
		}
		base.Codec, base.Width, base.Height = p.Format, p.Video.Width, p.Video.Height
		return base, true, nil
	case p.Kind == encoders.KindAudio && p.Audio != nil:
		switch {
		case !rep.Ended || rep.MediaSeconds <= 0:
			return f, true, ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg ended without writing any sound")
		case rep.Size >= 0 && rep.Size != size:
			return f, true, ittybit.Errorf(ittybit.ErrEncodeFailed, "the output holds %d bytes, but ffmpeg wrote %d: it is incomplete", size, rep.Size)
		}
		base.Codec = p.Audio.Codec
		if base.Codec == "pcm" {
			base.Codec = p.Audio.Encoder // pcm_s16le, as ffprobe names it
		}
		base.Duration = rep.MediaSeconds
		base.Bitrate = int64(float64(size*8) / rep.MediaSeconds)
		return base, true, nil
	}
	return f, false, nil
}

// checkImage decodes the picture at path and checks its size.
func checkImage(path, format string, width, height int) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	var decode func(io.Reader) (image.Image, error)
	switch format {
	case "jpeg":
		decode = jpeg.Decode
	case "png":
		decode = png.Decode
	case "gif":
		decode = gif.Decode
	case "webp":
		decode = webp.Decode
	case "avif":
		w, h, err := avifSize(fh)
		if err != nil {
			return err
		}
		return sameSize(w, h, width, height)
	default:
		return fmt.Errorf("no check for %s pictures", format)
	}
	img, err := decode(fh)
	if err != nil {
		return err
	}
	b := img.Bounds()
	return sameSize(b.Dx(), b.Dy(), width, height)
}

func sameSize(w, h, width, height int) error {
	if w != width || h != height {
		return fmt.Errorf("%d×%d, not the %d×%d planned", w, h, width, height)
	}
	return nil
}

// avifSize checks that the top-level boxes of an AVIF file (ISO BMFF)
// fill it exactly, with an "avif" brand, and returns the picture size of
// its first image spatial extents ("ispe") property.
func avifSize(r io.ReadSeeker) (int, int, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return 0, 0, err
	}
	var w, h int
	var walk func(b []byte, top bool) error
	walk = func(b []byte, top bool) error {
		for len(b) > 0 {
			if len(b) < 8 {
				return fmt.Errorf("a box is cut short")
			}
			n := int64(binary.BigEndian.Uint32(b))
			typ := string(b[4:8])
			hdr := int64(8)
			if n == 1 {
				if len(b) < 16 {
					return fmt.Errorf("a box is cut short")
				}
				n, hdr = int64(binary.BigEndian.Uint64(b[8:])), 16
			}
			if n == 0 && top {
				n = int64(len(b)) // to the end of the file
			}
			if n < hdr || n > int64(len(b)) {
				return fmt.Errorf("box %q says %d bytes, %d remain: the file is incomplete", typ, n, len(b))
			}
			body := b[hdr:n]
			switch typ {
			case "ftyp":
				if len(body) < 4 || (!bytes.Equal(body[:4], []byte("avif")) && !bytes.Contains(body, []byte("avif"))) {
					return fmt.Errorf("not an AVIF file")
				}
			case "meta":
				if len(body) < 4 {
					return fmt.Errorf("meta box cut short")
				}
				if err := walk(body[4:], false); err != nil { // a full box
					return err
				}
			case "iprp", "ipco":
				if err := walk(body, false); err != nil {
					return err
				}
			case "ispe":
				if len(body) >= 12 && w == 0 {
					w, h = int(binary.BigEndian.Uint32(body[4:])), int(binary.BigEndian.Uint32(body[8:]))
				}
			}
			b = b[n:]
		}
		return nil
	}
	if err := walk(data, true); err != nil {
		return 0, 0, err
	}
	if w == 0 || h == 0 {
		return 0, 0, fmt.Errorf("no picture size in the AVIF file")
	}
	return w, h, nil
}
