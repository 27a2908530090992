// Command liar is a test plugin that claims H.264 in software and reports
// every encode a success without writing it: it answers with the file it
// was asked for, 1 MB, having written nothing ($ITTYBIT_LIAR=empty: an
// empty file; =short: 10 bytes).
package main

import (
	"context"
	"os"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

func main() { encoderplugin.Serve(liar{}) }

type liar struct{}

func (liar) Info(context.Context) (encoderplugin.Info, error) {
	return encoderplugin.Info{Name: "liar", Version: "0"}, nil
}

func (liar) Detect(context.Context) ([]encoders.Capability, error) {
	return []encoders.Capability{{Backend: encoders.BackendSoftware, Codec: encoders.CodecH264, Available: true}}, nil
}

func (liar) Encode(ctx context.Context, req encoderplugin.Request, progress func(encoders.Progress)) (encoders.File, error) {
	switch os.Getenv("ITTYBIT_LIAR") {
	case "empty":
		_ = os.WriteFile(req.Job.Output, nil, 0o644)
	case "short":
		_ = os.WriteFile(req.Job.Output, []byte("0123456789"), 0o644)
	}
	progress(encoders.Progress{Fraction: 1})
	return encoders.File{Object: "file", Kind: string(req.Job.Plan.Kind), URL: req.Job.Output, Format: req.Job.Plan.Format,
		Codec: encoders.CodecH264, Width: 640, Height: 360, Duration: 2, Filesize: 1 << 20, Bitrate: 4 << 20}, nil
}
