package jsonobj

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzAppend holds AppendString and AppendFloat to json.Marshal.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "a<b>&c", `q"uo\te`, "é ü 😀", "line\nbreak", "\u2028", "bad \xff utf8"} {
		f.Add(s, 0.5)
	}
	for _, x := range []float64{0, 1, -1, 1e-7, 1.5e-9, 1e20, 1e21, -2.5e-7, 123456.789, math.SmallestNonzeroFloat64, math.MaxFloat64, math.Inf(1), math.NaN()} {
		f.Add("x", x)
	}
	f.Fuzz(func(t *testing.T, s string, x float64) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got, want)
		}
		want, werr := json.Marshal(x)
		got, err := AppendFloat(nil, x)
		if (err != nil) != (werr != nil) || (werr == nil && string(got) != string(want)) {
			t.Fatalf("AppendFloat(%v) = %s, %v; json.Marshal %s, %v", x, got, err, want, werr)
		}
	})
}
