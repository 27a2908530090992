package encoders

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecodeOptions decodes the seed's video options, as every server
// does for each task it applies from the Raft log.
func BenchmarkDecodeOptions(b *testing.B) {
	raw := []byte(`{"width":1280,"height":720,"format":"mp4","quality":"high","fit":"contain","background":"#000000","start":1.5,"end":"10"}`)
	b.ReportAllocs()
	for b.Loop() {
		var o Options
		if err := json.Unmarshal(raw, &o); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScalars checks the fast number and string readers of Options against
// encoding/json: they accept and read exactly what it does.
func FuzzScalars(f *testing.F) {
	for _, s := range []string{`0`, `-0`, `1.5e6`, `1E+2`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `0x10`, `1_000`, `Infinity`, `NaN`, `1e400`,
		`"high"`, `""`, `"a\"b"`, `"\u00e9t\u00e9"`, "\"\xff\"", "\"a\tb\"", `"50%"`, `" 50%"`, `"é"`, `"a`, `a"`, `"`, `null`, ` 7 `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n json.Number
		// A number token with nothing around it (json.Number also takes
		// a quoted number).
		isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
		wantNum := json.Unmarshal(b, &n) == nil && len(b) > 0 && (b[0] == '-' || isDigit(b[0])) && isDigit(b[len(b)-1])
		if got := isJSONNumber(b); got != wantNum {
			t.Errorf("isJSONNumber(%q) = %v, encoding/json says %v", b, got, wantNum)
		}
		var want string
		wantOK := json.Unmarshal(b, &want) == nil // null too, as before
		got, ok := unquote(b)
		if ok != wantOK || (ok && got != want) {
			t.Errorf("unquote(%q) = %q, %v; encoding/json reads %q, %v", b, got, ok, want, wantOK)
		}
	})
}
