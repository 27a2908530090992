package ffmpeg

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzMasterPlaylist reads arbitrary media playlists and writes a master
// playlist from what was read: neither may panic, and a written master may
// only hold the lines we meant to write (no injected tags or URIs).
func FuzzMasterPlaylist(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"init_0.mp4\"\n#EXTINF:6.000000,\nseg_000.m4s\n#EXTINF:2.000000,\nseg_001.m4s\n#EXT-X-ENDLIST\n"), "720p", 1280, 720)
	f.Add([]byte("#EXTM3U\n#EXTINF:1,\nhttp://example.com/a.ts\n"), "a\"b", 1, 1)
	f.Add([]byte("#EXTM3U\n#EXT-X-MAP:URI=\"x\n"), "x\n#EXT-X-ENDLIST", 0, -1)
	f.Fuzz(func(t *testing.T, playlist []byte, name string, w, h int) {
		pl, err := ParseMediaPlaylist(playlist)
		if err != nil {
			return
		}
		sizes := make([]int64, len(pl.Segments))
		for i := range sizes {
			sizes[i] = int64(len(pl.Segments[i].URI)) * 1000
		}
		rates := MeasureRates(pl.Segments, sizes)
		if rates.Peak < 0 || rates.Average < 0 {
			t.Fatalf("negative rates %+v", rates)
		}
		m := Master{Variants: []Variant{{URI: name + "/index.m3u8", Bandwidth: rates.Peak + 1, AverageBandwidth: rates.Average, Width: w, Height: h, Codecs: "avc1.64001f"}}}
		var b bytes.Buffer
		if err := WriteMaster(&b, m); err != nil {
			return
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[3], "#EXT-X-STREAM-INF:") || strings.HasPrefix(lines[4], "#") {
			t.Fatalf("unexpected master playlist:\n%s", b.String())
		}
	})
}
