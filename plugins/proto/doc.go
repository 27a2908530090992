// Package proto is the encoder plugin protocol (encoder.proto) and its
// generated gRPC code. The protocol changes by addition only; regenerate
// the Go files with `make proto` after editing encoder.proto.
package proto
