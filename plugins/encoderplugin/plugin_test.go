package encoderplugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-plugin"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/plugins/encoderplugin"
)

// fakeEncoder is an Encoder made of function fields.
type fakeEncoder struct {
	info   func(context.Context) (encoderplugin.Info, error)
	detect func(context.Context) ([]encoders.Capability, error)
	encode func(context.Context, encoderplugin.Request, func(encoders.Progress)) (encoders.File, error)
}

func (f *fakeEncoder) Info(ctx context.Context) (encoderplugin.Info, error) { return f.info(ctx) }
func (f *fakeEncoder) Detect(ctx context.Context) ([]encoders.Capability, error) {
	return f.detect(ctx)
}
func (f *fakeEncoder) Encode(ctx context.Context, r encoderplugin.Request, p func(encoders.Progress)) (encoders.File, error) {
	return f.encode(ctx, r, p)
}

// connect serves impl over an in-process gRPC connection and returns the
// host's side of it.
func connect(t *testing.T, impl encoderplugin.Encoder) encoderplugin.Encoder {
	t.Helper()
	// Closing the client stops the server too (go-plugin's controller).
	client, _ := plugin.TestPluginGRPCConn(t, false, encoderplugin.VersionedPlugins(impl)[encoderplugin.ProtocolVersion])
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(encoderplugin.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(encoderplugin.Encoder)
}

func TestInfoAndDetectRoundTrip(t *testing.T) {
	want := []encoders.Capability{
		{Backend: encoders.BackendNVENC, Codec: "h264", Available: true, Device: "GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)", MaxSessions: 5},
		{Backend: encoders.BackendNVENC, Codec: "vp9", Reason: "NVENC has no VP9 encoder"},
	}
	enc := connect(t, &fakeEncoder{
		info: func(context.Context) (encoderplugin.Info, error) {
			return encoderplugin.Info{Name: "nvenc", Version: "1.2.3"}, nil
		},
		detect: func(context.Context) ([]encoders.Capability, error) { return want, nil },
	})
	info, err := enc.Info(t.Context())
	if err != nil || info != (encoderplugin.Info{Name: "nvenc", Version: "1.2.3"}) {
		t.Errorf("Info = %+v, %v", info, err)
	}
	got, err := enc.Detect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Detect (-want +got):\n%s", diff)
	}
}

func TestEncodeStreamsProgressCommandsAndResult(t *testing.T) {
	plan := encoders.Plan{Kind: encoders.KindVideo, Format: "mp4", Backend: encoders.BackendNVENC, Encoder: "h264_nvenc",
		Video:  &encoders.VideoPlan{Codec: "h264", Encoder: "h264_nvenc", Geometry: encoders.Geometry{Width: 640, Height: 360, ScaleWidth: 640, ScaleHeight: 360, Fit: "fill"}},
		Source: encoders.MediaInfo{Format: "mov", Duration: 2, Width: 640, Height: 360, HasVideo: true}}
	wantFile := encoders.File{Object: "file", Kind: "video", URL: "/out/a.mp4", Format: "mp4", Codec: "h264", Width: 640, Height: 360, Duration: 2}
	var gotReq encoderplugin.Request
	enc := connect(t, &fakeEncoder{encode: func(ctx context.Context, r encoderplugin.Request, progress func(encoders.Progress)) (encoders.File, error) {
		gotReq = r
		r.Trace([]string{"ffmpeg", "-i", r.Job.Input})
		progress(encoders.Progress{Fraction: 0.5, Frames: 30, MediaSeconds: 1, Speed: 2})
		progress(encoders.Progress{Fraction: 1, Frames: 60, MediaSeconds: 2, Speed: 2})
		return wantFile, nil
	}})
	var progress []encoders.Progress
	var commands [][]string
	file, err := enc.Encode(t.Context(), encoderplugin.Request{
		Job:    encoders.Job{Plan: plan, Input: "/in/a.mov", Output: "/out/a.mp4"},
		Device: "GPU 0", Trace: func(argv []string) { commands = append(commands, argv) },
	}, func(p encoders.Progress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantFile, file); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(plan, gotReq.Job.Plan); diff != "" {
		t.Errorf("the plan did not survive the trip (-sent +received):\n%s", diff)
	}
	if gotReq.Device != "GPU 0" || gotReq.Job.Input != "/in/a.mov" || gotReq.Job.Output != "/out/a.mp4" {
		t.Errorf("request %+v", gotReq)
	}
	if diff := cmp.Diff([][]string{{"ffmpeg", "-i", "/in/a.mov"}}, commands); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if len(progress) != 2 || progress[1] != (encoders.Progress{Fraction: 1, Frames: 60, MediaSeconds: 2, Speed: 2}) {
		t.Errorf("progress %+v", progress)
	}
}

func TestEncodeWithoutTraceRunsNoTrace(t *testing.T) {
	enc := connect(t, &fakeEncoder{encode: func(_ context.Context, r encoderplugin.Request, _ func(encoders.Progress)) (encoders.File, error) {
		if r.Trace != nil {
			t.Error("the plugin got a trace function nobody asked for")
		}
		return encoders.File{Object: "file"}, nil
	}})
	if _, err := enc.Encode(t.Context(), encoderplugin.Request{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeErrorsKeepTheirKind(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want *ittybit.Error
	}{
		{"encode failed", ittybit.Errorf(ittybit.ErrEncodeFailed, "ffmpeg failed (exit status 1): OpenEncodeSessionEx failed: out of memory (10)"),
			&ittybit.Error{Kind: ittybit.ErrEncodeFailed, Message: "ffmpeg failed (exit status 1): OpenEncodeSessionEx failed: out of memory (10)"}},
		{"invalid media", ittybit.Errorf(ittybit.ErrInvalidMedia, "ffmpeg could not read the input"),
			&ittybit.Error{Kind: ittybit.ErrInvalidMedia, Message: "ffmpeg could not read the input"}},
		{"plain error", errors.New("disk full"), &ittybit.Error{Kind: ittybit.ErrInternal, Message: "disk full"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := connect(t, &fakeEncoder{encode: func(context.Context, encoderplugin.Request, func(encoders.Progress)) (encoders.File, error) {
				return encoders.File{}, tc.err
			}})
			_, err := enc.Encode(t.Context(), encoderplugin.Request{}, nil)
			var e *ittybit.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is no *ittybit.Error", err, err)
			}
			if diff := cmp.Diff(tc.want, e); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEncodeCancelReachesThePlugin: the caller's context is the plugin's:
// cancelling it ends the encode in the plugin.
func TestEncodeCancelReachesThePlugin(t *testing.T) {
	started := make(chan struct{})
	ended := make(chan error, 1)
	enc := connect(t, &fakeEncoder{encode: func(ctx context.Context, _ encoderplugin.Request, _ func(encoders.Progress)) (encoders.File, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return encoders.File{}, ittybit.Errorf(ittybit.ErrCancelled, "encode cancelled")
	}})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, err := enc.Encode(ctx, encoderplugin.Request{}, nil)
	if ittybit.KindOf(err) != ittybit.ErrCancelled {
		t.Errorf("error %v, want kind cancelled", err)
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("the plugin's context ended with %v", err)
	}
}

func TestLoggerWritesHclogJSON(t *testing.T) {
	var buf bytes.Buffer
	encoderplugin.Logger(&buf, slog.LevelInfo).Warn("test encode failed", "encoder", "h264_nvenc")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if line["@level"] != "warn" || line["@message"] != "test encode failed" || line["encoder"] != "h264_nvenc" || line["@timestamp"] == nil {
		t.Errorf("line %s", buf.Bytes())
	}
}

// TestPlansSurviveJSON: plans travel as JSON, so every kind of plan must
// come back from it unchanged.
func TestPlansSurviveJSON(t *testing.T) {
	src := encoders.MediaInfo{
		Format: "mov", Duration: 10, Width: 1920, Height: 1080, FPS: 30, FrameRate: "30/1", SampleAspect: "1:1", PixelFmt: "yuv420p",
		Codecs: encoders.Codecs{Video: "h264", Audio: "aac"}, HasVideo: true, HasAudio: true, AudioChannels: 6, SampleRate: 48000,
	}
	end, bitrate := 4.5, int64(2_000_000)
	for _, tc := range []struct {
		kind    encoders.Kind
		backend encoders.Backend
		options encoders.Options
	}{
		{encoders.KindVideo, encoders.BackendNVENC, encoders.Options{Width: encoders.Px(640), Height: encoders.Px(640), Background: "#336699", End: &end}},
		{encoders.KindVideo, encoders.BackendQSV, encoders.Options{Codec: "h265", Bitrate: &bitrate}},
		{encoders.KindAudio, encoders.BackendSoftware, encoders.Options{Format: "mp3"}},
		{encoders.KindImage, encoders.BackendSoftware, encoders.Options{Format: "webp", Width: encoders.Pct(50)}},
		{encoders.KindAdaptive, encoders.BackendVAAPI, encoders.Options{}},
	} {
		plan, err := encoders.NewPlan(encoders.Spec{Kind: tc.kind, Input: "in.mov", Options: tc.options}, src, tc.backend)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(plan)
		if err != nil {
			t.Fatal(err)
		}
		var back encoders.Plan
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(plan, back); diff != "" {
			t.Errorf("%s on %s (-sent +received):\n%s", tc.kind, tc.backend, diff)
		}
	}
}
