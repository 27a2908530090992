package jsonobj

import (
	"encoding/json"
	"testing"
)

// String agrees with json.Unmarshal on every JSON value, plain
// strings (its fast way) or not, and leaves dst as json.Unmarshal does
// (null and the values it refuses change nothing).
func TestString(t *testing.T) {
	for _, raw := range []string{
		`"https://example.com/a.mov"`, `""`, `"é ü 😀"`, `"a\"b"`, `"a\\b"`, `"\u00e9"`, `"line\nbreak"`,
		"\"bad \xff utf8\"", "\"tab\there\"", `12`, `null`, `true`, `["a"]`, `{"a":1}`, `"`,
	} {
		want, got := "before", "before"
		werr := json.Unmarshal([]byte(raw), &want)
		ok := String(json.RawMessage(raw), &got)
		if ok != (werr == nil) || got != want {
			t.Errorf("%s: got %q, %v; json.Unmarshal %q, %v", raw, got, ok, want, werr)
		}
	}
}
