package agent

import (
	"context"
	"io"

	"github.com/ittybit-oss/ittybit/encoders"
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
}

// S3 reads s3:// inputs and writes s3:// outputs; *storage.S3 is one.
type S3 interface {
	Download(ctx context.Context, s3URL, localPath string, maxBytes int64) (int64, error)
	Upload(ctx context.Context, localPath, s3URL string) error
	UploadDir(ctx context.Context, localDir, s3PrefixURL, last string) error
}

// Fetcher downloads http(s) inputs through the SSRF checks;
// *storage.Fetcher is one.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string, w io.Writer) (int64, error)
}

// Prober reads a local media file; *probe.Prober is one.
type Prober interface {
	Probe(ctx context.Context, path string) (encoders.MediaInfo, error)
}

// EncodeRequest is one encode: what the task asks for, the probe of its
// source, the local source file and where to write.
type EncodeRequest struct {
	Spec   encoders.Spec
	Source encoders.MediaInfo
	Input  string
	Output string
	// Started is called as each attempt starts (the first choice, a
	// software retry), before its progress reports; the function it
	// returns is called when the attempt ends. Encoders call it so that
	// sessions and throughput count under the encoder really running.
	Started func(Attempt) (ended func())
	// LogArgs are the step's log attributes (task_id, step_id, node_id),
	// for the encoder's own lines about it.
	LogArgs []any
}

// Attempt is one try at an encode.
type Attempt struct {
	// Plan is what runs; Plan.Encoder names the ffmpeg encoder.
	Plan encoders.Plan
	// Sessions is how many encoder sessions it opens: one per video
	// stream (an HLS ladder opens one per rendition).
	Sessions int
}

// EncodeResult is what an encode produced and how.
type EncodeResult struct {
	File encoders.File
	// Plan is the plan actually run; Encoder and Plugin name what ran it.
	Plan    encoders.Plan
	Encoder string
	Plugin  string
	// Fallback is set when a hardware encode failed and software took
	// over.
	Fallback *Fallback
}

// Fallback records why an encode left hardware for software.
type Fallback struct {
	From   string `json:"from"`
	Reason string `json:"reason"`
}

// Encoder runs encodes with the best encoder this host has for the codec:
// the plugin host, or the software encoder alone.
type Encoder interface {
	Capabilities() []encoders.Capability
	Encode(ctx context.Context, req EncodeRequest, progress func(encoders.Progress)) (EncodeResult, error)
}
