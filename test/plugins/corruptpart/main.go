// Command corruptpart is a test encoder plugin: H.264 as the software
// encoder makes it, except that the first time it encodes part 1 of a
// split step it overwrites the second half of the file with zeros, as a
// faulty encoder or disk might, keeping its size, and says nothing (a size
// that differs from the one reported the plugin host refuses at once; see
// plugins/host's TestPluginThatLies). The agent's check of the part as it
// lands must catch it. The mark
// that it has done so is a file beside the plugin's binary, so that the
// agents sharing its folder cut one part in all.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

// victim is the index of the part cut short, once.
const victim = 1

func main() { encoderplugin.Serve(corruptPart{}) }

type corruptPart struct{}

func (corruptPart) Info(context.Context) (encoderplugin.Info, error) {
	return encoderplugin.Info{Name: "corruptpart", Version: "1.0.0"}, nil
}

// Detect claims H.264 when this machine's ffmpeg has libx264.
func (corruptPart) Detect(ctx context.Context) ([]encoders.Capability, error) {
	for _, c := range detect.Software(ctx, detect.Config{}).Capabilities {
		if c.Codec == encoders.CodecH264 {
			return []encoders.Capability{c}, nil
		}
	}
	return nil, nil
}

func (corruptPart) Encode(ctx context.Context, req encoderplugin.Request, progress func(encoders.Progress)) (encoders.File, error) {
	sw := &ffmpeg.Software{Runner: &ffmpeg.Runner{Trace: req.Trace}, Prober: &probe.Prober{Trace: req.Trace}}
	f, err := sw.Encode(ctx, req.Job, progress)
	if err != nil || req.Job.Plan.Part == nil || req.Job.Plan.Part.Index != victim || req.Job.Plan.Part.Kind != encoders.PartVideo {
		return f, err
	}
	self, err := os.Executable()
	if err != nil {
		return f, err
	}
	mark, err := os.OpenFile(fmt.Sprintf("%s.cut-%d", self, victim), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return f, nil // cut once already
	}
	mark.Close()
	data, err := os.ReadFile(req.Job.Output)
	if err != nil {
		return f, err
	}
	clear(data[len(data)/2:])
	return f, os.WriteFile(req.Job.Output, data, 0o600)
}
