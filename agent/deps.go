package agent

import (
	"context"
	"io"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/storage"
)

// Managed is managed storage as the agent uses it: sources, staged
// encodes and published results, under keys "tasks/<task id>/…".
// *storage.Local and storage's S3 store satisfy it.
type Managed interface {
	Put(ctx context.Context, key, localPath string) error
	PutDir(ctx context.Context, prefix, localDir, last string) error
	Get(ctx context.Context, key, localPath string) error
	GetDir(ctx context.Context, prefix, localDir string) error
	CopyDir(ctx context.Context, fromPrefix, toPrefix, last string) error
	DeletePrefix(ctx context.Context, prefix string) error
	// Open tells whether a result was published (Deliver, again).
	Open(ctx context.Context, key string) (storage.File, error)
}

// S3 reads s3:// inputs and writes s3:// outputs; *storage.S3 is one.
type S3 interface {
	Download(ctx context.Context, s3URL, localPath string, maxBytes int64) (int64, error)
	Upload(ctx context.Context, localPath, s3URL string) error
	UploadDir(ctx context.Context, localDir, s3PrefixURL, last string) error
	// Size tells whether a result was uploaded (Deliver, again).
	Size(ctx context.Context, s3URL string) (int64, error)
}

// Fetcher downloads http(s) inputs through the SSRF checks;
// *storage.Fetcher is one.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string, w io.Writer) (int64, error)
}

// Prober reads a local media file and counts a video's frames;
// *probe.Prober is one.
type Prober interface {
	Probe(ctx context.Context, path string) (encoders.MediaInfo, error)
	CountFrames(ctx context.Context, path string) (int64, error)
}

// Encoder runs encodes with the best encoder this host has for the codec;
// *host.Host is one.
type Encoder interface {
	Capabilities() []encoders.Capability
	Encode(ctx context.Context, req encoders.Request, progress func(encoders.Progress)) (encoders.Result, error)
}
