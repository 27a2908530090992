// Command x264fast is an example external encoder plugin: H.264 with
// libx264's ultrafast preset, for when speed matters more than size. Build
// it into a plugin directory and ittybit uses it for every H.264 encode:
//
//	go build -o plugins/x264fast ./plugins/examples/x264fast
//	ittybit encoders --plugin-dir plugins
//	ittybit video -i clip.mov --plugin-dir plugins
package main

import (
	"context"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

func main() { encoderplugin.Serve(x264fast{}) }

type x264fast struct{}

func (x264fast) Info(context.Context) (encoderplugin.Info, error) {
	return encoderplugin.Info{Name: "x264fast", Version: "1.0.0"}, nil
}

// Detect claims H.264 when this machine's ffmpeg has libx264.
func (x264fast) Detect(ctx context.Context) ([]encoders.Capability, error) {
	for _, c := range detect.Software(ctx, detect.Config{}).Capabilities {
		if c.Codec == encoders.CodecH264 {
			return []encoders.Capability{c}, nil
		}
	}
	return nil, nil
}

// Encode runs the host's plan with the fastest preset.
func (x264fast) Encode(ctx context.Context, req encoderplugin.Request, progress func(encoders.Progress)) (encoders.File, error) {
	job := req.Job
	if job.Plan.Video != nil {
		v := *job.Plan.Video
		v.Preset = "ultrafast"
		job.Plan.Video = &v
	}
	sw := &ffmpeg.Software{Runner: &ffmpeg.Runner{Trace: req.Trace}, Prober: &probe.Prober{Trace: req.Trace}}
	return sw.Encode(ctx, job, progress)
}
