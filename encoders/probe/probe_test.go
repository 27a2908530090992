package probe_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

var clips *encoderstest.Clips

func TestMain(m *testing.M) {
	clips = encoderstest.NewClips()
	code := m.Run()
	clips.Close()
	os.Exit(code)
}

// TestParseFixtures reads ffprobe reports captured from real files.
func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file string
		want encoders.MediaInfo
	}{
		{"rotated.mp4.json", encoders.MediaInfo{
			// Stored 640×360 with a display matrix: reported as shown.
			Format: "mov", Duration: 1, Width: 360, Height: 640, FPS: 30, FrameRate: "30/1",
			Codecs: encoders.Codecs{Video: "h264", Audio: "aac"}, HasAudio: true, HasVideo: true,
			Filesize: 110785, Rotation: 270, Bitrate: 886280, Frames: 30, VideoDuration: 1, PixelFmt: "yuv420p",
			SampleAspect: "1:1", AudioChannels: 1, SampleRate: 44100,
		}},
		{"surround.flac.json", encoders.MediaInfo{
			Format: "flac", Duration: 2, Codecs: encoders.Codecs{Audio: "flac"}, HasAudio: true,
			Filesize: 32829, Bitrate: 131316, AudioChannels: 6, SampleRate: 44100, AudioBits: 16,
		}},
		{"still.png.json", encoders.MediaInfo{
			Format: "png_pipe", Width: 300, Height: 200, FPS: 25, FrameRate: "25/1",
			Codecs: encoders.Codecs{Video: "png"}, HasVideo: true, Filesize: 7839,
			Still: true, PixelFmt: "rgb24", SampleAspect: "1:1",
		}},
		{"cover.mp3.json", encoders.MediaInfo{
			// The cover art is an attached picture, not a video.
			Format: "mp3", Duration: 2.037551, Codecs: encoders.Codecs{Audio: "mp3"}, HasAudio: true,
			Filesize: 29634, Bitrate: 116351, AudioChannels: 1, SampleRate: 44100,
		}},
		{"anamorphic.mkv.json", encoders.MediaInfo{
			Format: "matroska", Duration: 1.001, Width: 720, Height: 480, FPS: 29.97, FrameRate: "30000/1001",
			Codecs: encoders.Codecs{Video: "h264"}, HasVideo: true, Filesize: 139144, Bitrate: 1112039,
			PixelFmt: "yuv420p", SampleAspect: "32:27",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := probe.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MediaInfo (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for name, report := range map[string]string{
		"not json":   "ffprobe said no",
		"no format":  `{"streams":[]}`,
		"no streams": `{"streams":[],"format":{"format_name":"mov","duration":"1.0"}}`,
		"data only":  `{"streams":[{"codec_type":"data"}],"format":{"format_name":"mpegts"}}`,
	} {
		if _, err := probe.Parse([]byte(report)); ittybit.KindOf(err) != ittybit.ErrInvalidMedia {
			t.Errorf("%s: got %v, want invalid_media", name, err)
		}
	}
	// A container may state a size no decoder checked: over the budget,
	// refused all the same.
	huge := `{"streams":[{"codec_type":"video","codec_name":"h264","width":100000,"height":100000}],"format":{"format_name":"mov","duration":"1.0"}}`
	if _, err := probe.Parse([]byte(huge)); ittybit.KindOf(err) != ittybit.ErrUnsupportedMedia || !strings.Contains(err.Error(), "100000×100000") {
		t.Errorf("100000×100000 video: got %v, want unsupported_media naming the size", err)
	}
}

func TestProbeClips(t *testing.T) {
	p := &probe.Prober{}
	for _, tc := range []struct {
		clip encoderstest.Clip
		want func(encoders.MediaInfo) bool
	}{
		{encoderstest.Odd, func(m encoders.MediaInfo) bool { return m.Width == 721 && m.Height == 405 && m.HasAudio && m.FPS == 30 }},
		{encoderstest.Rotated, func(m encoders.MediaInfo) bool { return m.Width == 360 && m.Height == 640 && m.Rotation != 0 }},
		{encoderstest.Silent, func(m encoders.MediaInfo) bool { return m.HasVideo && !m.HasAudio }},
		{encoderstest.Sound, func(m encoders.MediaInfo) bool { return !m.HasVideo && m.HasAudio && m.Format == "wav" }},
		{encoderstest.Sixty, func(m encoders.MediaInfo) bool { return m.FPS == 60 }},
	} {
		m, err := p.Probe(t.Context(), clips.Path(t, tc.clip))
		if err != nil {
			t.Fatalf("%s: %v", tc.clip.Name, err)
		}
		if !tc.want(m) {
			t.Errorf("%s: unexpected %+v", tc.clip.Name, m)
		}
	}
}

// TestProbeRefusesHostileFiles: playlists and reference formats are refused
// whatever their name, and junk is invalid media, never a crash.
func TestProbeRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	mustWrite(t, secret, "root:x:0:0:root:/root:/bin/bash\n")
	real := clips.Path(t, encoderstest.Silent)
	data, _ := os.ReadFile(real)
	invalid, tooBig := ittybit.ErrInvalidMedia, ittybit.ErrUnsupportedMedia
	files := map[string]struct {
		content string
		kind    ittybit.ErrorKind
	}{
		"playlist.mp4":  {"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n" + secret + "\n#EXT-X-ENDLIST\n", invalid},
		"playlist.avi":  {"#EXTM3U\n#EXTINF:1,\nfile://" + secret + "\n#EXT-X-ENDLIST\n", invalid},
		"concat.mov":    {"ffconcat version 1.0\nfile '" + real + "'\n", invalid},
		"text.mp4":      {"this is not a video\n", invalid},
		"empty.mp4":     {"", invalid},
		"truncated.mp4": {string(data[:len(data)/3]), invalid},
		// Image bombs: a few hundred bytes announcing a picture that would
		// take gigabytes to decode. ffmpeg itself refuses 100000×100000;
		// 16000×16000 (256 megapixels) it would decode, into 1 GiB.
		"bomb.png":       {string(encoderstest.PNGHeader(100000, 100000)), tooBig},
		"big.png":        {string(encoderstest.PNGHeader(16000, 16000)), tooBig},
		"big-png-as.mp4": {string(encoderstest.PNGHeader(16000, 16000)), tooBig},
		"just-under.png": {string(encoderstest.PNGHeader(16384, 8192)), ""},
		"just-over.png":  {string(encoderstest.PNGHeader(16384, 8193)), tooBig},
	}
	p := &probe.Prober{}
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			mustWrite(t, path, f.content)
			start := time.Now()
			m, err := p.Probe(t.Context(), path)
			if f.kind == "" {
				// At the limit: read (the picture data is junk, so decoding
				// it may fail later, but the size is within budget).
				if err != nil && ittybit.KindOf(err) == ittybit.ErrUnsupportedMedia {
					t.Fatalf("refused a picture within the budget: %v (%+v)", err, m)
				}
				return
			}
			if ittybit.KindOf(err) != f.kind {
				t.Fatalf("got %v (%+v), want %s", err, m, f.kind)
			}
			if strings.Contains(err.Error(), "root:x") {
				t.Errorf("error leaks the file: %v", err)
			}
			if strings.Contains(err.Error(), dir) {
				t.Errorf("error names the local path: %v", err)
			}
			if f.kind == tooBig && !strings.Contains(err.Error(), "megapixels") {
				t.Errorf("message %q does not name the budget", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("probing took %v", d)
			}
		})
	}
}

func TestProbeImageInput(t *testing.T) {
	dir := t.TempDir()
	// A picture named with a sequence pattern must still be one file.
	for _, name := range []string{"photo.jpg", "frame%03d.png"} {
		path := filepath.Join(dir, name)
		out, err := exec("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=300x200", "-frames:v", "1", "-update", "1", path)
		if err != nil {
			t.Fatalf("make %s: %v %s", name, err, out)
		}
		m, err := (&probe.Prober{}).Probe(t.Context(), path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !m.Still || m.Width != 300 || m.Height != 200 {
			t.Errorf("%s: %+v", name, m)
		}
	}
}

func mustWrite(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TestProbeLateMatroska: a Matroska file whose timestamps start at 10 s
// (as ffmpeg writes a capture cut from a broadcast) says it lasts until
// its last timestamp; the probe reports how long it runs.
func TestProbeLateMatroska(t *testing.T) {
	out := filepath.Join(t.TempDir(), "late.mkv")
	if b, err := exec("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=6", "-c:v", "libx264", "-preset", "ultrafast",
		"-output_ts_offset", "10", out); err != nil {
		t.Fatalf("make the file: %v\n%s", err, b)
	}
	m, err := (&probe.Prober{}).Probe(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Duration < 5.9 || m.Duration > 6.1 {
		t.Errorf("duration %.3f s, want 6", m.Duration)
	}
}
