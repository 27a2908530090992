package probe_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// FuzzParse feeds arbitrary ffprobe reports to Parse: it must never panic,
// and what it accepts must be sane, its picture within the pixel budget.
// Seeds: the fixtures in testdata and the corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, report []byte) {
		m, err := probe.Parse(report)
		if err != nil {
			if k := ittybit.KindOf(err); k != ittybit.ErrInvalidMedia && k != ittybit.ErrUnsupportedMedia {
				t.Fatalf("error of kind %s: %v", k, err)
			}
			return
		}
		if int64(m.Width)*int64(m.Height) > encoders.MaxSourcePixels {
			t.Fatalf("accepted a %d×%d picture, over the budget of %d pixels", m.Width, m.Height, encoders.MaxSourcePixels)
		}
		if !m.HasAudio && !m.HasVideo {
			t.Fatalf("accepted a report with no streams: %+v", m)
		}
		if m.Rotation%90 != 0 || m.Rotation < 0 || m.Rotation >= 360 {
			t.Fatalf("rotation %d", m.Rotation)
		}
		if m.Duration < 0 || m.Width < 0 || m.Height < 0 || m.FPS < 0 || m.FPS > 1000 {
			t.Fatalf("negative or absurd values: %+v", m)
		}
	})
}
