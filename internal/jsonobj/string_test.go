package jsonobj

import (
	"encoding/json"
	"testing"
)

// String agrees with json.Unmarshal on every JSON value, plain
// strings (its fast way) or not.
func TestString(t *testing.T) {
	for _, raw := range []string{
		`"https://example.com/a.mov"`, `""`, `"é ü 😀"`, `"a\"b"`, `"a\\b"`, `"\u00e9"`, `"line\nbreak"`,
		"\"bad \xff utf8\"", "\"tab\there\"", `12`, `null`, `true`, `["a"]`, `{"a":1}`, `"`,
	} {
		var want, got string
		werr := json.Unmarshal([]byte(raw), &want)
		ok := String(json.RawMessage(raw), &got)
		if ok != (werr == nil) || got != want {
			t.Errorf("%s: got %q, %v; json.Unmarshal %q, %v", raw, got, ok, want, werr)
		}
	}
}
