package encoders

import "context"

// Job is one encode: a plan, the local source file and where to write.
type Job struct {
	Plan Plan
	// Input is the path of the source on local disk. Encoders read
	// untrusted media only from local files.
	Input string
	// Output is the path to write: the file, or for HLS the master
	// playlist, with the renditions in folders beside it. Encoders publish
	// it whole or not at all.
	Output string
}

// Progress is how far an encode has got.
type Progress struct {
	// Fraction is done/total in [0, 1], from media time (or frames)
	// actually encoded; 0 while unknown.
	Fraction float64 `json:"fraction"`
	// Frames is the number of video frames written so far.
	Frames int64 `json:"frames,omitempty"`
	// MediaSeconds is the output media time written so far.
	MediaSeconds float64 `json:"media_seconds,omitempty"`
	// Speed is media seconds per wall second (the real-time factor).
	Speed float64 `json:"speed,omitempty"`
}

// Encoder runs jobs. It is the extension point that built-in and plugin
// encoders implement.
//
// Encode blocks until the job is done, ctx is cancelled or it fails. It
// calls progress (which may be nil) from one goroutine at a time, in order.
// Errors are *ittybit.Error values: ittybit.ErrEncodeFailed for a failed encode,
// ittybit.ErrInvalidMedia for a source that cannot be decoded, ittybit.ErrCancelled when ctx
// ended it.
type Encoder interface {
	Encode(ctx context.Context, job Job, progress func(Progress)) (File, error)
}

// File describes a media file: an ingested source, an encoded result or a
// delivered one. Its JSON is the file object of the contract; fields that do
// not apply are left out.
type File struct {
	Object   string  `json:"object"` // always "file"
	Kind     string  `json:"kind"`   // video, audio, image, adaptive_video
	URL      string  `json:"url"`
	Format   string  `json:"format,omitempty"`
	Codec    string  `json:"codec,omitempty"`
	Width    int     `json:"width,omitempty"`
	Height   int     `json:"height,omitempty"`
	Duration float64 `json:"duration,omitempty"`
	FPS      float64 `json:"fps,omitempty"`
	Filesize int64   `json:"filesize,omitempty"`
	Bitrate  int64   `json:"bitrate,omitempty"`
	// Renditions are the variants of an HLS result, whose URL is the master
	// playlist.
	Renditions []File `json:"renditions,omitempty"`
}

// MapURLs returns a copy of f with its URL and its renditions' URLs
// replaced by to(URL): a result moved from a local folder to storage, or
// from staging to its destination.
func (f File) MapURLs(to func(string) string) File {
	f.URL = to(f.URL)
	if len(f.Renditions) > 0 {
		rs := make([]File, len(f.Renditions))
		for i, r := range f.Renditions {
			rs[i] = r.MapURLs(to)
		}
		f.Renditions = rs
	}
	return f
}
