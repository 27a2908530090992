// Command crashy is a test plugin that claims H.264 in software and dies
// in the middle of its encodes: at the first progress report, with ffmpeg
// running. With $ITTYBIT_CRASHY_ONCE set it dies only while that file does
// not exist (it creates it), so later encodes succeed.
package main

import (
	"context"
	"os"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

func main() { encoderplugin.Serve(crashy{}) }

type crashy struct{}

func (crashy) Info(context.Context) (encoderplugin.Info, error) {
	return encoderplugin.Info{Name: "crashy", Version: "0"}, nil
}

func (crashy) Detect(context.Context) ([]encoders.Capability, error) {
	return []encoders.Capability{{Backend: encoders.BackendSoftware, Codec: encoders.CodecH264, Available: true}}, nil
}

func (crashy) Encode(ctx context.Context, req encoderplugin.Request, progress func(encoders.Progress)) (encoders.File, error) {
	marker := os.Getenv("ITTYBIT_CRASHY_ONCE")
	crash := true
	if marker != "" {
		_, err := os.Stat(marker)
		crash = os.IsNotExist(err)
	}
	sw := &ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: &probe.Prober{}}
	return sw.Encode(ctx, req.Job, func(p encoders.Progress) {
		if crash {
			if marker != "" {
				os.WriteFile(marker, nil, 0o644)
			}
			os.Exit(3)
		}
		progress(p)
	})
}
