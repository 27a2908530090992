package agent

import (
	"context"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
)

// SoftwareEncoder encodes with ffmpeg's software encoders, in process. It
// serves hosts without the plugin host and tests.
type SoftwareEncoder struct {
	Encoder *ffmpeg.Software
}

var _ Encoder = SoftwareEncoder{}

// Capabilities lists the software encoders: every video codec.
func (s SoftwareEncoder) Capabilities() []encoders.Capability {
	var out []encoders.Capability
	for _, c := range encoders.VideoCodecs {
		out = append(out, encoders.Capability{Plugin: "software", Backend: encoders.BackendSoftware, Codec: c, Available: true})
	}
	return out
}

// Encode plans for the software backend and runs the plan.
func (s SoftwareEncoder) Encode(ctx context.Context, req EncodeRequest, progress func(encoders.Progress)) (EncodeResult, error) {
	plan, err := encoders.NewPlan(req.Spec, req.Source, encoders.BackendSoftware)
	if err != nil {
		return EncodeResult{}, err
	}
	if req.Started != nil {
		sessions := 1
		if plan.HLS != nil {
			sessions = max(len(plan.HLS.Renditions), 1)
		}
		if ended := req.Started(Attempt{Plan: plan, Sessions: sessions}); ended != nil {
			defer ended()
		}
	}
	f, err := s.Encoder.Encode(ctx, encoders.Job{Plan: plan, Input: req.Input, Output: req.Output}, progress)
	if err != nil {
		return EncodeResult{}, err
	}
	return EncodeResult{File: f, Plan: plan, Encoder: plan.Encoder, Plugin: "software"}, nil
}
