// Package encoderplugin is the go-plugin glue of ittybit's encoder plugins:
// the handshake, the versioned plugin set, the gRPC adapters on both sides
// of the protocol in plugins/proto, and Serve, which a plugin's main calls.
//
// A plugin implements Encoder and calls Serve from main:
//
//	func main() { encoderplugin.Serve(myEncoder{}) }
//
// The host (plugins/host) launches the binary, dispenses an Encoder whose
// methods are gRPC calls, and never talks to a plugin any other way. Only
// gRPC is spoken; the connection is mutually authenticated (AutoMTLS).
package encoderplugin

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/ittybit-oss/ittybit/encoders"
	pb "github.com/ittybit-oss/ittybit/plugins/proto"
)

// ProtocolVersion is the current version of the encoder plugin protocol.
// A version is a set of gRPC services; go-plugin negotiates the highest
// version both the host and the plugin speak.
const ProtocolVersion = 1

// PluginName is the name the encoder service is dispensed under.
const PluginName = "encoder"

// Handshake returns the go-plugin handshake of encoder plugins. The magic
// cookie only stops a user from running a plugin binary by hand; it is no
// security measure.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "ITTYBIT_ENCODER_PLUGIN",
		MagicCookieValue: "4f1c0d3e-ittybit-encoder",
	}
}

// VersionedPlugins returns the plugin sets per protocol version. A host
// passes a nil impl; a plugin passes its Encoder.
func VersionedPlugins(impl Encoder) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}

// Serve serves impl as an encoder plugin on stdin/stdout's handshake and
// returns when the host tells the plugin to stop. Nothing may be written to
// stdout before it is called: the handshake line goes there.
func Serve(impl Encoder) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: VersionedPlugins(impl),
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

// Encoder is what an encoder plugin provides, and what the host calls: the
// plugin implements it, Serve exposes it over gRPC, and the host gets an
// implementation (*Client) whose methods are the remote calls.
type Encoder interface {
	// Info says who the plugin is.
	Info(ctx context.Context) (Info, error)
	// Detect says what the plugin can encode on this machine: one row per
	// backend, device and codec, available or not and why. The host fills
	// in Capability.Plugin.
	Detect(ctx context.Context) ([]encoders.Capability, error)
	// Encode carries out req.Job on req.Device, calling progress (which
	// may be nil) as it goes. Errors are *ittybit.Error values of the
	// contract's kinds; ctx ends the encode.
	Encode(ctx context.Context, req Request, progress func(encoders.Progress)) (encoders.File, error)
}

// Info describes a plugin.
type Info struct {
	// Name is the plugin's name in `ittybit encoders` and in task records.
	Name    string
	Version string
}

// Request is one encode.
type Request struct {
	Job encoders.Job
	// Device is a Capability.Device the plugin reported ("" for software).
	Device string
	// Trace, when set, is called with each command line the plugin runs,
	// before it runs it (the CLI's --debug).
	Trace func(argv []string)
}

// GRPCPlugin is the go-plugin plugin of the encoder service: it registers
// Impl on a plugin's gRPC server and makes a *Client on the host's side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin's encoder; nil on the host's side.
	Impl Encoder
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the encoder service backed by Impl.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterEncoderServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client calling the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{rpc: pb.NewEncoderClient(conn)}, nil
}
