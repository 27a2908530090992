package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

type bodyHashCase struct {
	req  api.CreateTaskRequest
	opts []byte
	want string
}

// bodyHashCases are requests with the hashes every release gave them: a
// retry after an upgrade must find its key's hash unchanged.
func bodyHashCases() []bodyHashCase {
	return []bodyHashCase{
		{req: api.CreateTaskRequest{Input: "https://example.com/upload.mov", Kind: encoders.KindVideo}, opts: []byte(`{}`), want: "b4b6bd67a4c7f2a369405518b602db1aff1e2420095a0677a9780189fc137100"},
		{req: api.CreateTaskRequest{Input: "https://example.com/a.mp3", Kind: encoders.KindAudio, Output: "s3://bucket/out.m4a", Metadata: json.RawMessage(`{"a":1,"b":"x"}`)},
			opts: []byte(`{"format":"m4a"}`), want: "c546bfc006c366783cd1ff4c7f3cdfb98f943adec1e773832c1c83d8143521d1"},
		{req: api.CreateTaskRequest{Input: "https://example.com/upload.mov", Kind: encoders.KindVideo, Priority: "high"}, opts: []byte(`{"height":720,"width":1280}`), want: "1915c2f066bcce27e017e32509c50514b264fe9ff3474c7e6a3304e6d6b632b5"},
		{req: api.CreateTaskRequest{Input: "s3://b/" + strings.Repeat("k", 600), Kind: encoders.KindImage, Metadata: json.RawMessage(`{"long":"` + strings.Repeat("v", 700) + `"}`)}, opts: nil, want: "9adf856ac5f7a3ab498b0a370d95e9340ea000cc4b69d8d04b04dcb509cbcad4"},
		{want: "fabc833872435cea3f0863489221d2c8681ee3205369a021ae97d0e5b841cfb3"},
	}
}

func TestBodyHashUnchanged(t *testing.T) {
	for i, c := range bodyHashCases() {
		if got := bodyHash(c.req, c.opts); got != c.want {
			t.Errorf("case %d: hash %s, want %s (as every release gave it)", i, got, c.want)
		}
	}
}

func BenchmarkBodyHash(b *testing.B) {
	c := bodyHashCases()[1]
	b.ReportAllocs()
	for b.Loop() {
		bodyHash(c.req, c.opts)
	}
}
