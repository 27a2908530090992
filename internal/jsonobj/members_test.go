package jsonobj

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// FuzzMembers holds Members to json.Unmarshal into a
// map[string]json.RawMessage: the same verdict, the same members.
// `go test` runs the seeds; `go test -fuzz FuzzMembers` looks further.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`,
		`{}`, ` { } `, `{"a":1,"a":2}`, `{"a\"b":[1,{"c":"}"}],"d":null,"e":true,"f":-1.5e3}`, `{"\u00e9":"x","é":"y"}`,
		`{"s":"a\\\"}b","t":[[],[{}]],"u":"\u007d"}`, "{\"\xff\":1}", `{"a":1,}`, `{"a"}`, `[1]`, `"x"`, `{"a":1} x`, `{`, ``,
		"{\n\t\"a\" :\r\n 1 ,\"b\": \"2\" }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want map[string]json.RawMessage
		werr := json.Unmarshal(data, &want)
		if len(data) > 0 && data[0] != '{' {
			werr = errNotObject // Members takes trimmed data
		}
		got, ok := Members(nil, data)
		if ok != (werr == nil) {
			t.Fatalf("%q: Members %v, json.Unmarshal %v", data, ok, werr)
		}
		if !ok {
			return
		}
		names := slices.Sorted(maps.Keys(want))
		if len(got) != len(names) {
			t.Fatalf("%q: %d members, json.Unmarshal %d", data, len(got), len(names))
		}
		for i, m := range got {
			if m.Name != names[i] || string(m.Raw) != string(want[m.Name]) {
				t.Fatalf("%q: member %d is %q=%s, json.Unmarshal %q=%s", data, i, m.Name, m.Raw, names[i], want[names[i]])
			}
		}
	})
}

var errNotObject = json.Unmarshal([]byte(`1`), new(map[string]json.RawMessage))
