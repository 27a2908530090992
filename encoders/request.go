package encoders

// Request is one encode step: what the task asks for, from which probed
// source file, to where. The plugin host runs it (plugins/host: the plan
// for the chosen backend, the plugin, the software retry); the agent and
// the CLI's local mode make it. One type from the host up: nobody
// translates it.
type Request struct {
	Spec Spec
	// Source is the probe of Input.
	Source MediaInfo
	// Input is the source on local disk; Output the file to write (for
	// adaptive_video the master playlist).
	Input, Output string
	// Trace, when set, is called with each command a plugin runs, before
	// it runs (the CLI's --debug).
	Trace func(argv []string)
	// Started, when set, is called as each attempt starts, with what runs
	// it; the attempt's progress reports follow, and the function it
	// returns (which may be nil) is called when the attempt ends. The
	// agent counts encoder sessions and media time under the encoder
	// actually running with it.
	Started func(Attempt) (ended func())
	// LogArgs are added to the host's log lines about this encode
	// (task_id, step_id, node_id).
	LogArgs []any
	// Part, when set, asks for one part of a split encode, not the whole:
	// Output is then the part's file.
	Part *Part
}

// Attempt is one try at an encode step: the first choice, or the software
// retry after it failed.
type Attempt struct {
	// Plan is what the attempt runs; Plan.Encoder names the encoder.
	Plan   Plan
	Plugin string
	// Device is the capability row's device ("" for software).
	Device string
	// Sessions is how many encoder sessions the attempt opens: one per
	// video stream, so one per rendition of an HLS ladder.
	Sessions int
	// Retry marks the software retry of a failed attempt.
	Retry bool
}

// Result is how an encode step went.
type Result struct {
	File File
	// Plan is the plan of the last attempt: the one that made File.
	Plan Plan
	// Encoder is the ffmpeg encoder that made File ("h264_nvenc").
	Encoder string
	Plugin  string
	// Fallback is set when a first attempt failed and this is the retry.
	Fallback *Fallback
}

// Fallback records why an encode ran elsewhere than first chosen.
type Fallback struct {
	From   string `json:"from"`   // the encoder of the failed attempt
	Reason string `json:"reason"` // its error
}
