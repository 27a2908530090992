package steps

import (
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

func TestSourceName(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com/Wall.jpg":            "source.jpg",
		"https://example.com/upload.MOV?sig=a.b":  "source.mov",
		"https://example.com/a.mp4#t=1.5":         "source.mp4",
		"s3://bucket/in/clip.webm":                "source.webm",
		"https://example.com/download":            "source",
		"https://example.com/x.tar.gz":            "source.gz",
		"https://example.com/x.verylongextension": "source",
		"https://example.com/x.m%34v":             "source",
		"https://example.com/dir.d/file":          "source",
		"/local/clip.mov":                         "source.mov",
	} {
		if got := SourceName(in); got != want {
			t.Errorf("SourceName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResultName(t *testing.T) {
	out := "s3://b/processed/video.webm"
	for _, tc := range []struct {
		task api.AssignedTask
		want string
	}{
		{api.AssignedTask{Kind: encoders.KindVideo}, "output.mp4"},
		{api.AssignedTask{Kind: encoders.KindVideo, Output: &out}, "output.webm"},
		{api.AssignedTask{Kind: encoders.KindAudio, Options: encoders.Options{Format: "flac"}}, "output.flac"},
		{api.AssignedTask{Kind: encoders.KindAdaptive}, "master.m3u8"},
	} {
		if got := ResultName(tc.task); got != tc.want {
			t.Errorf("ResultName(%+v) = %q, want %q", tc.task, got, tc.want)
		}
	}
}
