package encoders

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A clone shares nothing with its original: changing what one points to
// leaves the other as it was.
func TestOptionsClone(t *testing.T) {
	var o Options
	if err := json.Unmarshal([]byte(`{"width":1280,"height":"50%","fps":30,"bitrate":1000000,"start":1.5,"end":9,"nope":1,"fit":7}`), &o); err != nil {
		t.Fatal(err)
	}
	c := o.Clone()
	if !cmp.Equal(o, c, cmp.AllowUnexported(Options{})) {
		t.Fatalf("clone differs: %+v against %+v", c, o)
	}
	c.Width.Pixels, c.Height.Percent, *c.FPS, *c.Bitrate, *c.Start, *c.End = 1, 1, 1, 1, 1, 1
	c.bad["fit"] = json.RawMessage(`"x"`)
	c.unknown[0] = "changed"
	if o.Width.Pixels != 1280 || o.Height.Percent != 50 || *o.FPS != 30 || *o.Bitrate != 1000000 || *o.Start != 1.5 || *o.End != 9 {
		t.Errorf("the original changed with its clone: %+v", o)
	}
	if string(o.bad["fit"]) != "7" || o.unknown[0] != "nope" {
		t.Errorf("the original's bad or unknown options changed: %v %v", o.bad, o.unknown)
	}
}
