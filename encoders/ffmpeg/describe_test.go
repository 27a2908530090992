package ffmpeg_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// TestDescribedLikeProbed: images and sounds are described without a
// probe of the result (describe.go); the description must be what ffprobe
// finds in the file, field by field, for every format.
func TestDescribedLikeProbed(t *testing.T) {
	prober := &probe.Prober{}
	for _, tc := range []struct {
		clip    encoderstest.Clip
		kind    encoders.Kind
		options string
	}{
		{encoderstest.Odd, encoders.KindImage, `{"format": "jpeg", "width": 320, "start": 1}`},
		{encoderstest.Odd, encoders.KindImage, `{"format": "png"}`},
		{encoderstest.Rotated, encoders.KindImage, `{"format": "webp", "width": 200}`},
		{encoderstest.Odd, encoders.KindImage, `{"format": "gif", "width": 160, "height": 160, "fit": "cover"}`},
		{encoderstest.Portrait, encoders.KindImage, `{"format": "avif", "width": 100, "height": 100, "fit": "contain"}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "mp3"}`},
		{encoderstest.Odd, encoders.KindAudio, `{"format": "aac", "start": 0.5}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "ogg"}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "opus", "end": 2}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "flac"}`},
		{encoderstest.Odd, encoders.KindAudio, `{"format": "wav"}`},
	} {
		t.Run(string(tc.kind)+" "+tc.options, func(t *testing.T) {
			f, _ := encode(t, tc.clip, tc.kind, tc.options)
			var plan encoders.Plan
			plan.Kind = tc.kind
			info, err := prober.Probe(t.Context(), f.URL)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(f.URL)
			if f.Filesize != st.Size() {
				t.Errorf("filesize %d, the file holds %d", f.Filesize, st.Size())
			}
			switch tc.kind {
			case encoders.KindImage:
				var o encoders.Options
				_ = json.Unmarshal([]byte(tc.options), &o)
				if f.Width != info.Width || f.Height != info.Height || f.Codec != o.Format || f.Duration != 0 || f.Bitrate != 0 {
					t.Errorf("described %s %dx%d dur %v bitrate %d; ffprobe finds %s %dx%d", f.Codec, f.Width, f.Height, f.Duration, f.Bitrate, info.Codecs.Video, info.Width, info.Height)
				}
			case encoders.KindAudio:
				if want := ffmpeg.CodecName(info.Codecs.Audio); f.Codec != want {
					t.Errorf("codec %q, ffprobe finds %q", f.Codec, want)
				}
				if math.Abs(f.Duration-info.Duration) > 0.05 {
					t.Errorf("duration %.3f, ffprobe finds %.3f", f.Duration, info.Duration)
				}
				if want := float64(st.Size()*8) / info.Duration; math.Abs(float64(f.Bitrate)-want) > 0.02*want {
					t.Errorf("bitrate %d, the file's size over ffprobe's duration is %.0f", f.Bitrate, want)
				}
				if f.Width != 0 || f.Height != 0 || f.FPS != 0 {
					t.Errorf("a sound with a picture size: %+v", f)
				}
			}
		})
	}
}

// TestBrokenResultsRefused: an ffmpeg that exits 0 but leaves a broken
// file (here one cut short after it finished, by a wrapper standing in for
// a faulty build or disk) fails the encode with encode_failed, for
// pictures and sounds alike, and publishes nothing.
func TestBrokenResultsRefused(t *testing.T) {
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "ffmpeg")
	// The output is ffmpeg's last argument; keep its first half.
	script := "#!/bin/sh\nffmpeg \"$@\" || exit $?\nfor last; do :; done\nsize=$(stat -c %s \"$last\")\ntruncate -s $((size / 2)) \"$last\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	prober := &probe.Prober{}
	for _, tc := range []struct {
		clip    encoderstest.Clip
		kind    encoders.Kind
		options string
	}{
		{encoderstest.Odd, encoders.KindImage, `{"format": "jpeg"}`},
		{encoderstest.Odd, encoders.KindImage, `{"format": "png"}`},
		{encoderstest.Odd, encoders.KindImage, `{"format": "webp"}`},
		{encoderstest.Odd, encoders.KindImage, `{"format": "avif", "width": 64}`},
		{encoderstest.Odd, encoders.KindImage, `{"format": "gif", "width": 64}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "mp3"}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "wav"}`},
		{encoderstest.Sound, encoders.KindAudio, `{"format": "aac"}`},
	} {
		t.Run(string(tc.kind)+" "+tc.options, func(t *testing.T) {
			in := clips.Path(t, tc.clip)
			var o encoders.Options
			if err := json.Unmarshal([]byte(tc.options), &o); err != nil {
				t.Fatal(err)
			}
			info, err := prober.Probe(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := encoders.NewPlan(encoders.Spec{Kind: tc.kind, Input: in, Options: o}, info, encoders.BackendSoftware)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out"+encoders.Extension(plan.Format))
			enc := &ffmpeg.Software{Runner: &ffmpeg.Runner{Path: wrapper}, Prober: prober}
			f, err := enc.Encode(t.Context(), encoders.Job{Plan: plan, Input: in, Output: out}, nil)
			if ittybit.KindOf(err) != ittybit.ErrEncodeFailed {
				t.Fatalf("a result cut in half: %+v, %v; want encode_failed", f, err)
			}
			if !strings.Contains(err.Error(), "broken picture") && !strings.Contains(err.Error(), "incomplete") {
				t.Errorf("error %q does not say the result is broken", err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a broken result was published at %s", out)
			}
		})
	}
}
