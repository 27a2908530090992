package encoderplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	pb "github.com/ittybit-oss/ittybit/plugins/proto"
)

// ErrStopped marks an encode that ended because the plugin went away: its
// process died or the connection broke before a result or an error came.
// The host retries such an encode elsewhere.
var ErrStopped = errors.New("plugin stopped")

// Client is an Encoder whose methods call a plugin over gRPC. The host gets
// one from go-plugin's Dispense.
type Client struct {
	rpc pb.EncoderClient
}

var _ Encoder = (*Client)(nil)

// Info asks the plugin who it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	resp, err := c.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return Info{}, fmt.Errorf("plugin info: %w", err)
	}
	return Info{Name: resp.Name, Version: resp.Version}, nil
}

// Detect asks the plugin what it can encode here.
func (c *Client) Detect(ctx context.Context) ([]encoders.Capability, error) {
	resp, err := c.rpc.Detect(ctx, &pb.DetectRequest{})
	if err != nil {
		return nil, fmt.Errorf("plugin detect: %w", err)
	}
	caps := make([]encoders.Capability, len(resp.Capabilities))
	for i, c := range resp.Capabilities {
		caps[i] = encoders.Capability{
			Backend: encoders.Backend(c.Backend), Codec: c.Codec, Available: c.Available,
			Reason: c.Reason, Device: c.Device, MaxSessions: int(c.MaxSessions),
		}
	}
	return caps, nil
}

// Encode runs req in the plugin, relaying its progress and commands. The
// error is the plugin's *ittybit.Error; ErrCancelled when ctx ended the
// encode; or, when the plugin went away, an error wrapping ErrStopped.
func (c *Client) Encode(ctx context.Context, req Request, progress func(encoders.Progress)) (encoders.File, error) {
	plan, err := json.Marshal(req.Job.Plan)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "encode plan: %v", err)
	}
	stream, err := c.rpc.Encode(ctx, &pb.EncodeRequest{
		PlanJson: plan, Input: req.Job.Input, Output: req.Job.Output,
		Device: req.Device, Trace: req.Trace != nil,
	})
	if err != nil {
		return encoders.File{}, c.broken(ctx, err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return encoders.File{}, fmt.Errorf("%w: the encode stream ended without a result", ErrStopped)
		}
		if err != nil {
			return encoders.File{}, c.broken(ctx, err)
		}
		switch e := ev.Event.(type) {
		case *pb.EncodeEvent_Progress:
			if progress != nil {
				p := e.Progress
				progress(encoders.Progress{Fraction: p.Fraction, Frames: p.Frames, MediaSeconds: p.MediaSeconds, Speed: p.Speed})
			}
		case *pb.EncodeEvent_Command:
			if req.Trace != nil {
				req.Trace(e.Command.Argv)
			}
		case *pb.EncodeEvent_Error:
			return encoders.File{}, &ittybit.Error{Kind: ittybit.ErrorKind(e.Error.Kind), Message: e.Error.Message}
		case *pb.EncodeEvent_Result:
			var f encoders.File
			if err := json.Unmarshal(e.Result.FileJson, &f); err != nil {
				return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "decode the plugin's result: %v", err)
			}
			return f, nil
		}
		// Events of later protocol additions are skipped.
	}
}

// broken turns a failed call into ErrCancelled when ctx ended it; an
// internal error when the plugin refused the request; and an ErrStopped
// error when the plugin or the connection went away.
func (c *Client) broken(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ittybit.Errorf(ittybit.ErrCancelled, "encode cancelled")
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unimplemented, codes.FailedPrecondition:
		return ittybit.Errorf(ittybit.ErrInternal, "the plugin refused the encode: %s", status.Convert(err).Message())
	}
	return fmt.Errorf("%w: %w", ErrStopped, err)
}
