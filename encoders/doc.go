// Package encoders is the encoding domain of ittybit: the options of each task
// kind exactly as the public API takes them, their validation (with the error
// kinds of the external contract), the format and codec rules, the probe
// result of a source, and the Plan that resolves options against a probe into
// concrete pixel sizes, filters and rate control for one encoder.
//
// The package is pure and uses the standard library only: it does no I/O and
// starts no processes. encoders/probe fills a MediaInfo, encoders/ffmpeg turns
// a Plan into an ffmpeg argument list and runs it.
package encoders
