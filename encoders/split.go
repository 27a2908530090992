package encoders

import (
	"fmt"
	"math"
)

// PartKind says what a part of a split encode makes.
type PartKind string

// Part kinds.
const (
	// PartVideo is a run of the picture's frames, without sound.
	PartVideo PartKind = "video"
	// PartAudio is the whole sound track, encoded once: never per part,
	// where each encoder's priming samples would click at every join.
	PartAudio PartKind = "audio"
	// PartRendition is one rendition of an HLS ladder, whole: its own
	// playlist, init segment and segments, key frames at the same times
	// as every other rendition's.
	PartRendition PartKind = "rendition"
)

// Part is one piece of a split encode: the parts of a task encode on
// different nodes and are stitched into the one result.
type Part struct {
	Index int      `json:"index"`
	Kind  PartKind `json:"kind"`
	// Start and End bound the part in seconds from the source file's start
	// (as ffmpeg's -ss counts them): [Start, End).
	// A video part's bounds fall halfway between two frames, so that no
	// rounding puts a frame in two parts or in none.
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// First is the index of a video part's first frame, counted from the
	// picture's first frame; Frames is how many frames it holds.
	First  int64 `json:"first_frame,omitempty"`
	Frames int64 `json:"frames,omitempty"`
	// Rendition is a rendition part's index among the plan's HLS
	// renditions. A rendition part with Frames is a run of whole segments
	// of that rendition (a ladder split in time, SplitLadder), encoded like
	// a video part; without, the whole rendition.
	Rendition int `json:"rendition,omitempty"`
}

// Chunk says whether a part is a run of frames encoded on its own: a
// video part, or a rendition part of a ladder split in time.
func (p Part) Chunk() bool {
	return p.Kind == PartVideo || (p.Kind == PartRendition && p.Frames > 0)
}

// SplitRenditions fans an adaptive plan out into parts: each rendition of
// its ladder whole, and its sound, so that they encode on several nodes
// at once. Every rendition keeps its key frames at the same times, as the
// plan forces them, so the segments stay aligned across renditions. It
// returns an error when the plan has fewer than two such parts.
func SplitRenditions(p Plan) ([]Part, error) {
	if p.Kind != KindAdaptive || p.HLS == nil || p.Video == nil {
		return nil, fmt.Errorf("not split: only adaptive tasks fan out by rendition")
	}
	var parts []Part
	for i := range p.HLS.Renditions {
		parts = append(parts, Part{Index: i, Kind: PartRendition, Rendition: i, Start: p.Start, End: p.Start + p.Duration})
	}
	if p.Audio != nil {
		parts = append(parts, Part{Index: len(parts), Kind: PartAudio, Start: p.Start, End: p.Start + p.Duration})
	}
	if len(parts) < 2 {
		return nil, fmt.Errorf("not split: one rendition and no sound")
	}
	return parts, nil
}

// LadderSplittable says whether an adaptive plan can be split in time as
// well as by rendition, and why not: a picture of a constant, known frame
// rate that every rendition keeps, from the source's start to its end.
func LadderSplittable(p Plan) (bool, string) {
	switch {
	case p.Kind != KindAdaptive || p.HLS == nil || p.Video == nil || len(p.HLS.Renditions) == 0:
		return false, "only adaptive tasks are split by rendition and time"
	case p.HLS.SegmentSeconds <= 0:
		return false, "the ladder has no segment length"
	}
	for _, r := range p.HLS.Renditions {
		if r.FPS != "" {
			return false, "rendition " + r.Name + " changes the frame rate"
		}
	}
	return steadyPicture(p)
}

// SplitLadder splits an adaptive plan by rendition and in time: every
// rendition is cut into the same runs of whole segments, of about seconds
// each (at least one segment), and the sound is one part, whole. frames
// is the exact number of the source picture's frames. A run starts on the
// frame where the one-run ladder would start a segment (the first at or
// after a multiple of the segment length), so its key frames, and the
// segments cut at them, fall where they would in one run; the last run
// takes what is left. The parts are numbered rendition by rendition, each
// rendition's runs in time order, the sound last. It returns an error
// when the ladder cannot be split in time (see LadderSplittable) or makes
// fewer than two runs.
func SplitLadder(p Plan, frames int64, seconds float64) ([]Part, error) {
	if ok, why := LadderSplittable(p); !ok {
		return nil, fmt.Errorf("not split in time: %s", why)
	}
	if err := checkSplit(frames, seconds); err != nil {
		return nil, err
	}
	fps, _ := ParseRatio(p.Source.FrameRate)
	seg := p.HLS.SegmentSeconds
	per := max(1, math.Round(seconds/seg)) * seg // a run's length: whole segments
	var bounds []int64                           // the first frame of each run
	for k := 0; ; k++ {
		first := int64(math.Ceil(float64(k)*per*fps - 1e-6))
		if k > 0 && first+int64(math.Ceil(MinPartSeconds*fps)) > frames {
			break // what is left joins the run before
		}
		bounds = append(bounds, first)
	}
	if len(bounds) < 2 {
		return nil, fmt.Errorf("not split in time: %d frames make fewer than two runs of %g s", frames, per)
	}
	bounds = append(bounds, frames)
	var parts []Part
	for r := range p.HLS.Renditions {
		for k := range len(bounds) - 1 {
			first, last := bounds[k], bounds[k+1]
			parts = append(parts, Part{
				Index: len(parts), Kind: PartRendition, Rendition: r, First: first, Frames: last - first,
				Start: frameBound(first, fps, p.Source.VideoStart), End: frameBound(last, fps, p.Source.VideoStart),
			})
		}
	}
	if p.Audio != nil {
		parts = append(parts, Part{Index: len(parts), Kind: PartAudio, Start: p.Start, End: p.Start + p.Duration})
	}
	return parts, nil
}

// MinPartSeconds is the shortest part a split may ask for: below it, the
// cost of a part (a process, a seek, a key frame, an upload) outweighs
// the parallel work.
const MinPartSeconds = 2

// Splittable says whether a plan can be split into parts, and why not:
// a video plan whose picture has a constant, known frame rate that the
// plan keeps, from its start to its end.
func Splittable(p Plan) (bool, string) {
	if p.Kind != KindVideo || p.Video == nil {
		return false, "only video tasks are split"
	}
	return steadyPicture(p)
}

// steadyPicture says whether a plan's picture can be cut on frames, and
// why not: a constant, known frame rate that the plan keeps, from the
// source's start to its end. p.Video is set.
func steadyPicture(p Plan) (bool, string) {
	switch {
	case p.Source.VariableFrameRate:
		return false, "the source's frame rate is variable"
	case p.Video.FPS != "":
		return false, "the output changes the frame rate"
	case p.Start > 0 || p.Trim:
		return false, "the output is cut from part of the source"
	}
	if fps, ok := ParseRatio(p.Source.FrameRate); !ok || fps <= 0 {
		return false, "the source's frame rate is unknown"
	}
	return true, ""
}

// Split cuts a plan into video parts of about seconds each, plus one
// audio part when the plan has sound. frames is the exact number of the
// source picture's frames (counted, not as the container claims). Parts
// shorter than MinPartSeconds are merged into their neighbour, so the
// parts are within one part's length of equal. It returns an error when
// the plan cannot be split (see Splittable) or seconds is below
// MinPartSeconds.
func Split(p Plan, frames int64, seconds float64) ([]Part, error) {
	return SplitBalanced(p, frames, seconds, 0)
}

// SplitBalanced is Split for a fleet with slots free encode slots: the
// count of parts (the sound's included) grows to the next whole multiple
// of slots when that shortens the parts by at most a quarter, so that the
// parts fill the slots in whole rounds and the agents finish together
// rather than a few running the last parts alone. Parts never grow longer
// than asked. With slots below 2 it is Split.
func SplitBalanced(p Plan, frames int64, seconds float64, slots int) ([]Part, error) {
	if ok, why := Splittable(p); !ok {
		return nil, fmt.Errorf("not split: %s", why)
	}
	if err := checkSplit(frames, seconds); err != nil {
		return nil, err
	}
	fps, _ := ParseRatio(p.Source.FrameRate)
	per := int64(math.Round(seconds * fps))
	n := frames / per // a short remainder joins the parts
	if n < 2 {
		return nil, fmt.Errorf("not split: %d frames make fewer than two parts of %g s", frames, seconds)
	}
	if slots > 1 {
		n = balance(n, p.Audio != nil, int64(slots), frames, int64(math.Ceil(MinPartSeconds*fps)))
	}
	var parts []Part
	for i := range n {
		first := i * frames / n
		last := (i + 1) * frames / n
		parts = append(parts, Part{
			Index: int(i), Kind: PartVideo, First: first, Frames: last - first,
			Start: frameBound(first, fps, p.Source.VideoStart), End: frameBound(last, fps, p.Source.VideoStart),
		})
	}
	if p.Audio != nil {
		parts = append(parts, Part{Index: len(parts), Kind: PartAudio, Start: 0, End: float64(frames) / fps})
	}
	return parts, nil
}

// checkSplit refuses parts shorter than MinPartSeconds and a source with
// no frames.
func checkSplit(frames int64, seconds float64) error {
	if seconds < MinPartSeconds {
		return fmt.Errorf("parts of %g s: the least is %d s", seconds, MinPartSeconds)
	}
	if frames <= 0 {
		return fmt.Errorf("the source has no frames to split")
	}
	return nil
}

// balance grows n video parts (plus one for the sound, when audio) to
// the least count that fills slots in whole rounds, by at most a quarter,
// with parts of at least minFrames; n when none does.
func balance(n int64, audio bool, slots, frames, minFrames int64) int64 {
	extra := int64(0)
	if audio {
		extra = 1
	}
	for m := n; m <= n+n/4; m++ {
		if frames/m < minFrames {
			break
		}
		if (m+extra)%slots == 0 {
			return m
		}
	}
	return n
}

// frameBound is the time, from the file's start, halfway before frame n
// of a picture that starts at offset (0 for the first frame).
func frameBound(n int64, fps, offset float64) float64 {
	if n == 0 {
		return 0
	}
	return offset + (float64(n)-0.5)/fps
}

// PartFile is the file name a part is kept under: its index, zero-padded
// (even a lexical sort keeps the order); a video part in NUT, the audio
// part in the container of the result's format; a run of a rendition
// (SplitLadder) in NUT too; the other parts of an HLS ladder (whole
// renditions and the sound), each a folder, as a tar archive.
func PartFile(p Part, format string) string {
	ext := ".nut"
	switch {
	case p.Chunk():
	case format == "hls" || p.Kind == PartRendition:
		ext = ".tar"
	case p.Kind == PartAudio:
		ext = Extension(format)
	}
	return fmt.Sprintf("part-%05d%s", p.Index, ext)
}
