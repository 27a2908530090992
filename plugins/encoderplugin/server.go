package encoderplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	pb "github.com/ittybit-oss/ittybit/plugins/proto"
)

// server adapts an Encoder to the gRPC service, in the plugin's process.
type server struct {
	pb.UnimplementedEncoderServer
	impl Encoder
}

func (s *server) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.InfoResponse{Name: info.Name, Version: info.Version}, nil
}

func (s *server) Detect(ctx context.Context, _ *pb.DetectRequest) (*pb.DetectResponse, error) {
	caps, err := s.impl.Detect(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &pb.DetectResponse{Capabilities: make([]*pb.Capability, len(caps))}
	for i, c := range caps {
		resp.Capabilities[i] = &pb.Capability{
			Backend: string(c.Backend), Codec: c.Codec, Available: c.Available,
			Reason: c.Reason, Device: c.Device, MaxSessions: int32(c.MaxSessions),
		}
	}
	return resp, nil
}

// Encode runs the job and streams its events. The encode's outcome, error
// or result, is the last event; the RPC itself fails only when the request
// cannot be read or the stream breaks.
func (s *server) Encode(req *pb.EncodeRequest, stream pb.Encoder_EncodeServer) error {
	var plan encoders.Plan
	if err := json.Unmarshal(req.PlanJson, &plan); err != nil {
		return status.Errorf(codes.InvalidArgument, "decode plan: %v", err)
	}
	// The encoder calls progress from its own goroutine and trace from the
	// calling one; a stream takes one sender at a time.
	var mu sync.Mutex
	var sendErr error
	send := func(ev *pb.EncodeEvent) {
		mu.Lock()
		defer mu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(ev)
		}
	}
	r := Request{
		Job:    encoders.Job{Plan: plan, Input: req.Input, Output: req.Output},
		Device: req.Device,
	}
	if req.Trace {
		r.Trace = func(argv []string) {
			send(&pb.EncodeEvent{Event: &pb.EncodeEvent_Command{Command: &pb.Command{Argv: argv}}})
		}
	}
	file, err := s.impl.Encode(stream.Context(), r, func(p encoders.Progress) {
		send(&pb.EncodeEvent{Event: &pb.EncodeEvent_Progress{Progress: &pb.Progress{
			Fraction: p.Fraction, Frames: p.Frames, MediaSeconds: p.MediaSeconds, Speed: p.Speed,
		}}})
	})
	if err != nil {
		send(&pb.EncodeEvent{Event: &pb.EncodeEvent_Error{Error: errorEvent(err)}})
	} else {
		data, merr := json.Marshal(file)
		if merr != nil {
			return status.Errorf(codes.Internal, "encode result: %v", merr)
		}
		send(&pb.EncodeEvent{Event: &pb.EncodeEvent_Result{Result: &pb.EncodeResult{FileJson: data}}})
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		return fmt.Errorf("encode stream: %w", sendErr)
	}
	return nil
}

// errorEvent carries err's kind and message; an error that is no
// *ittybit.Error is internal.
func errorEvent(err error) *pb.Error {
	var e *ittybit.Error
	if errors.As(err, &e) {
		return &pb.Error{Kind: string(e.Kind), Message: e.Message}
	}
	return &pb.Error{Kind: string(ittybit.ErrInternal), Message: err.Error()}
}
