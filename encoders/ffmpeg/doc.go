// Package ffmpeg turns an encoders.Plan into an ffmpeg argument list and
// runs it: argument building is pure and tested with golden files; Runner
// starts ffmpeg with -progress, reports progress and maps failures to
// encoders error kinds; Software is the software-backend encoders.Encoder.
//
// Every command reads its input only from a local file, with the file
// protocol and the demuxer allow-list of encoders/probe, and never through
// a shell.
package ffmpeg
