package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/ittybit-oss/ittybit/encoders"
)

// TestOptionsMemo: a request's options read through the memo are what
// reading them afresh gives, the second time as the first, and their
// bytes are what json.Marshal writes for them; validating the shared
// options leaves them as they were.
func TestOptionsMemo(t *testing.T) {
	for _, raw := range []string{
		`{"width":1280,"height":720,"format":"mp4","quality":"high"}`,
		`{"width":"50%","fps":29.97,"codec":"h264"}`,
		`{"bogus":1,"width":"wide"}`,
		`{}`,
		`null`,
		`[1]`,
	} {
		for round := range 2 {
			body := []byte(`{"input":"https://example.com/a.mov","kind":"video","options":` + raw + `}`)
			req, opts, err := decodeCreateOptions(body)
			var fresh encoders.Options
			ferr := fresh.UnmarshalJSON([]byte(raw))
			if (err != nil) != (ferr != nil) {
				t.Fatalf("%s, round %d: error %v, read afresh %v", raw, round, err, ferr)
			}
			if err != nil {
				continue
			}
			want, _ := json.Marshal(fresh)
			got, _ := json.Marshal(req.Options)
			if string(got) != string(want) || string(opts) != string(want) {
				t.Fatalf("%s, round %d: options %s, bytes %s; read afresh %s", raw, round, got, opts, want)
			}
			_ = encoders.Validate(encoders.Spec{Kind: req.Kind, Input: req.Input, Options: req.Options}, encoders.Policy{})
			if again, _ := encoders.OptionsJSON([]byte(raw)); string(again) != string(want) {
				t.Fatalf("%s: after Validate the memo holds %s, want %s", raw, again, want)
			}
		}
	}
}
