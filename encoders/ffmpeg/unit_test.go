package ffmpeg

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

func TestProgressParser(t *testing.T) {
	in := "frame=10\nout_time_us=1000000\nspeed=2.5x\nprogress=continue\n" +
		"frame=20\nout_time_us=N/A\nspeed=N/A\nprogress=continue\n" +
		"frame=30\nout_time_us=500000\nprogress=continue\n" + // a step back: never reported
		"frame=40\nout_time_us=4000000\nprogress=continue\n" + // past the planned end
		"frame=41\nout_time_us=4000000\nprogress=end\n"
	p := &progressParser{duration: 4}
	var got []encoders.Progress
	p.feed(strings.NewReader(in), func(pr encoders.Progress) { got = append(got, pr) })
	want := []float64{0.25, 0.25, 0.25, 0.999, 1}
	if len(got) != len(want) {
		t.Fatalf("got %d reports, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Fraction != w {
			t.Errorf("report %d: fraction %v, want %v", i, got[i].Fraction, w)
		}
	}
	if got[0].Speed != 2.5 || got[0].Frames != 10 || got[4].Frames != 41 || got[0].MediaSeconds != 1 {
		t.Errorf("first report %+v, last %+v", got[0], got[4])
	}
	// Without a duration, frames decide.
	p = &progressParser{frames: 100}
	p.feed(strings.NewReader("frame=50\nprogress=continue\n"), func(pr encoders.Progress) {
		if pr.Fraction != 0.5 {
			t.Errorf("by frames: got %v, want 0.5", pr.Fraction)
		}
	})
}

func TestParseMediaPlaylist(t *testing.T) {
	pl, err := ParseMediaPlaylist([]byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"init_0.mp4\"\n#EXTINF:6.000000,\nseg_000.m4s\n#EXTINF:2.5,\nseg_001.m4s\n#EXT-X-ENDLIST\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pl.Map != "init_0.mp4" || len(pl.Segments) != 2 || pl.Segments[1].Duration != 2.5 || pl.Segments[1].URI != "seg_001.m4s" {
		t.Errorf("got %+v", pl)
	}
	for _, bad := range []string{"", "seg.ts\n", "#EXTM3U\nseg.ts\n", "#EXTM3U\n#EXTINF:x,\nseg.ts\n", "#EXTM3U\n#EXT-X-MAP:BYTERANGE=1\n"} {
		if _, err := ParseMediaPlaylist([]byte(bad)); err == nil {
			t.Errorf("ParseMediaPlaylist(%q): no error", bad)
		}
	}
}

func TestMeasureRates(t *testing.T) {
	segs := []Segment{{"a", 6}, {"b", 6}, {"c", 0.5}}
	r := MeasureRates(segs, []int64{750_000, 1_500_000, 50_000})
	if r.Peak != 2_000_000 {
		t.Errorf("peak %d, want 2000000", r.Peak)
	}
	// A short last segment is judged over one second: 400 kbit/s, not 800.
	if want := int64((750_000 + 1_500_000 + 50_000) * 8 / 12.5); r.Average != want {
		t.Errorf("average %d, want %d", r.Average, want)
	}
}

func TestWriteMaster(t *testing.T) {
	m := Master{
		Audio: []AudioRendition{{GroupID: "audio", Name: "default", URI: "audio/index.m3u8", Channels: 2, Default: true}},
		Variants: []Variant{
			{URI: "1080p/index.m3u8", Bandwidth: 6_500_000, AverageBandwidth: 5_000_000, Width: 1920, Height: 1080, FrameRate: 29.97, Codecs: "avc1.640028,mp4a.40.2", Audio: "audio"},
			{URI: "720p/index.m3u8", Bandwidth: 3_200_000, AverageBandwidth: 2_500_000, Width: 1280, Height: 720, FrameRate: 30, Codecs: "avc1.64001f,mp4a.40.2", Audio: "audio"},
			{URI: "540p/index.m3u8", Bandwidth: 2_100_000, AverageBandwidth: 1_800_000, Width: 960, Height: 540, FrameRate: 30, Codecs: "avc1.64001f,mp4a.40.2", Audio: "audio"},
		},
	}
	var b bytes.Buffer
	if err := WriteMaster(&b, m); err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2100000,AVERAGE-BANDWIDTH=1800000,RESOLUTION=960x540,FRAME-RATE=30.000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="audio"
540p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=6500000,AVERAGE-BANDWIDTH=5000000,RESOLUTION=1920x1080,FRAME-RATE=29.970,CODECS="avc1.640028,mp4a.40.2",AUDIO="audio"
1080p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=2500000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="audio"
720p/index.m3u8
`
	if b.String() != want {
		t.Errorf("master playlist:\n%s\nwant:\n%s", b.String(), want)
	}
	for _, bad := range []Master{
		{},
		{Variants: []Variant{{URI: "a\"b", Bandwidth: 1, Width: 1, Height: 1}}},
		{Variants: []Variant{{URI: "a", Bandwidth: 0, Width: 1, Height: 1}}},
		{Variants: []Variant{{URI: "a\n#EXT-X-ENDLIST", Bandwidth: 1, Width: 1, Height: 1}}},
	} {
		if err := WriteMaster(&bytes.Buffer{}, bad); err == nil {
			t.Errorf("WriteMaster(%+v): no error", bad)
		}
	}
}

func TestAVCCodecString(t *testing.T) {
	box := []byte{0, 0, 0, 0x2a, 'a', 'v', 'c', 'C', 1, 0x64, 0x00, 0x1f, 0xff}
	init := append(append([]byte("....stsd...."), box...), make([]byte, 40)...)
	if s, ok := AVCCodecString(init); !ok || s != "avc1.64001f" {
		t.Errorf("got %q %v, want avc1.64001f", s, ok)
	}
	if _, ok := AVCCodecString([]byte("no box here")); ok {
		t.Error("found a codec string in nothing")
	}
	if _, ok := AVCCodecString([]byte("avcC")); ok {
		t.Error("found a codec string in a truncated box")
	}
}

func TestClassify(t *testing.T) {
	err := classify("[mov,mp4 @ 0x1] moov atom not found\nin.mp4: Invalid data found when processing input\n", errExit)
	if ittybit.KindOf(err) != ittybit.ErrInvalidMedia {
		t.Errorf("truncated input: got %v", err)
	}
	err = classify("[libx264 @ 0x1] broken\nConversion failed!\n", errExit)
	if ittybit.KindOf(err) != ittybit.ErrEncodeFailed || !strings.Contains(err.Error(), "Conversion failed!") {
		t.Errorf("encoder failure: got %v", err)
	}
}

var errExit = errorString("exit status 1")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestHidePaths: ffmpeg's messages name the node's files; what reaches API
// users names them without the folder.
func TestHidePaths(t *testing.T) {
	args := []string{"-i", "/var/lib/ittybit/work/task_1/source", "-f", "mp4", "/var/lib/ittybit/work/task_1/encode-1/.output.mp4.tmp"}
	msg := "/var/lib/ittybit/work/task_1/source: Invalid data found when processing input\n"
	err := classify(hidePaths(msg, args), errExit)
	if strings.Contains(err.Error(), "/var/lib") || !strings.Contains(err.Error(), "source: Invalid data") {
		t.Errorf("got %v", err)
	}
}
