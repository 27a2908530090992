package httpapi

import "testing"

// BenchmarkDecodeCreate: the seed's video body, as every POST /tasks
// reads it.
func BenchmarkDecodeCreate(b *testing.B) {
	body := []byte(`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720,"format":"mp4","quality":"high"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreate(body); err != nil {
			b.Fatal(err)
		}
	}
}
