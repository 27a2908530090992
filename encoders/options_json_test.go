package encoders

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzOptionsAppendJSON holds Options.AppendJSON to json.Marshal: options
// decoded from any JSON (so any mix of set, unset and odd values), and
// numbers of any magnitude.
func FuzzOptionsAppendJSON(f *testing.F) {
	f.Add([]byte(`{"width":1280,"height":720,"format":"mp4","quality":"high"}`), 1.5)
	f.Add([]byte(`{"width":"50%","height":"12.5%","fit":"cover","position":"top_left","background":"#000<&>","codec":"h264"}`), 1e-7)
	f.Add([]byte(`{"fps":29.97,"bitrate":2500000,"start":1e-9,"end":3600,"format":"é"}`), math.Inf(1))
	f.Add([]byte(`{"nope":1,"width":true}`), math.NaN())
	f.Fuzz(func(t *testing.T, data []byte, x float64) {
		var o Options
		if json.Unmarshal(data, &o) != nil {
			return
		}
		check := func() {
			want, werr := json.Marshal(o)
			got, err := o.AppendJSON(nil)
			if (err != nil) != (werr != nil) || (werr == nil && string(got) != string(want)) {
				t.Fatalf("%s: AppendJSON %s, %v; json.Marshal %s, %v", data, got, err, want, werr)
			}
		}
		check()
		o.Start = &x
		check()
	})
}
