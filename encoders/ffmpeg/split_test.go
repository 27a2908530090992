package ffmpeg_test

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/encoders/ffmpeg"
	"github.com/ittybit-oss/ittybit/encoders/probe"
)

// splitSource makes a 320×240 test source with a tone: 12 s at rate fps,
// its sound run on 0.3 s past the picture, all timestamps offset by
// offset seconds (a stream cut from a broadcast starts late).
func splitSource(t *testing.T, rate string, offset float64, ext string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "source"+ext)
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=" + rate + ":duration=12",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=12.3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-c:a", "aac"}
	if offset > 0 {
		args = append(args, "-output_ts_offset", strconv.FormatFloat(offset, 'f', 3, 64))
	}
	if out, err := exec.Command("ffmpeg", append(args, out)...).CombinedOutput(); err != nil {
		t.Fatalf("make source: %v\n%s", err, out)
	}
	return out
}

// TestSplitAndStitch encodes sources whole and split into parts, in each
// codec and container, and checks the stitched result against the whole
// one: the same frames, duration within a frame, the sound ending within
// an audio frame, timestamps increasing, a clean decode, quality within
// 0.5 dB and size within 3 %.
func TestSplitAndStitch(t *testing.T) {
	ntsc := splitSource(t, "30000/1001", 0, ".mp4")
	late := splitSource(t, "25", 10, ".mkv")
	cases := []struct {
		name, source, codec, format string
	}{
		{"h264 mp4 29.97", ntsc, encoders.CodecH264, "mp4"},
		{"h265 mov 29.97", ntsc, encoders.CodecH265, "mov"},
		{"vp9 webm 29.97", ntsc, encoders.CodecVP9, "webm"},
		{"av1 mp4 29.97", ntsc, encoders.CodecAV1, "mp4"},
		{"h264 mp4 25 from 10 s", late, encoders.CodecH264, "mp4"},
	}
	pr := &probe.Prober{}
	r := &ffmpeg.Runner{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			info, err := pr.Probe(ctx, tc.source)
			if err != nil {
				t.Fatal(err)
			}
			spec := encoders.Spec{Kind: encoders.KindVideo, Input: tc.source, Options: encoders.Options{Codec: tc.codec, Format: tc.format}}
			plan, err := encoders.NewPlan(spec, info, encoders.BackendSoftware)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			whole := filepath.Join(dir, "whole."+tc.format)
			argv, err := ffmpeg.Args(plan, tc.source, whole)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Run(ctx, argv, plan.Duration, 0, func(encoders.Progress) {}); err != nil {
				t.Fatalf("whole: %v", err)
			}

			frames, err := pr.CountFrames(ctx, tc.source)
			if err != nil {
				t.Fatal(err)
			}
			parts, err := encoders.Split(plan, frames, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != 4 || parts[3].Kind != encoders.PartAudio {
				t.Fatalf("parts %+v, want 3 video parts and the audio", parts)
			}
			partDir := filepath.Join(dir, "parts")
			if err := os.Mkdir(partDir, 0o755); err != nil {
				t.Fatal(err)
			}
			audio := filepath.Join(dir, "audio."+tc.format)
			for _, part := range parts {
				if part.Kind == encoders.PartAudio {
					argv, err = ffmpeg.AudioPartArgs(plan, tc.source, audio)
				} else {
					argv, err = ffmpeg.PartArgs(plan, ffmpeg.Device{}, part, tc.source, filepath.Join(partDir, encoders.PartFile(part, plan.Format)))
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Run(ctx, argv, 0, part.Frames, func(encoders.Progress) {}); err != nil {
					t.Fatalf("part %d: %v", part.Index, err)
				}
				if part.Kind == encoders.PartVideo {
					if err := ffmpeg.CheckPart(ctx, r, pr, plan, part, filepath.Join(partDir, encoders.PartFile(part, plan.Format))); err != nil {
						t.Fatal(err)
					}
				}
			}
			split := filepath.Join(dir, "split."+tc.format)
			files := make([]string, len(parts))
			for i, p := range parts {
				files[i] = filepath.Join(partDir, encoders.PartFile(p, plan.Format))
				if p.Kind == encoders.PartAudio {
					files[i] = audio
				}
			}
			if _, err := ffmpeg.Stitch(ctx, r, pr, plan, parts, files, split); err != nil {
				t.Fatal(err)
			}

			wn, wv, wa, _ := encoderstest.Ends(t, whole)
			sn, sv, sa, increasing := encoderstest.Ends(t, split)
			if !increasing {
				t.Errorf("the split result's video timestamps repeat")
			}
			fps, _ := encoders.ParseRatio(info.FrameRate)
			if int64(sn) != frames || sn != wn {
				t.Errorf("split has %d frames, whole %d, source %d", sn, wn, frames)
			}
			if math.Abs(sv-wv) > 1/fps+1e-6 {
				t.Errorf("video ends at %.4f split, %.4f whole: more than a frame apart", sv, wv)
			}
			if aacFrame := 1024.0 / 48000; math.Abs(sa-wa) > aacFrame+1e-6 {
				t.Errorf("sound ends at %.4f split, %.4f whole: more than an audio frame apart", sa, wa)
			}
			if err := r.Decode(ctx, split); err != nil {
				t.Errorf("split result does not decode cleanly: %v", err)
			}
			ws, ss := encoderstest.PSNR(t, whole, tc.source), encoderstest.PSNR(t, split, tc.source)
			if ss < ws-0.5 {
				t.Errorf("PSNR %.2f dB split against %.2f dB whole", ss, ws)
			}
			wst, _ := os.Stat(whole)
			sst, _ := os.Stat(split)
			if ratio := float64(sst.Size()) / float64(wst.Size()); ratio < 0.97 || ratio > 1.03 {
				t.Errorf("split is %d bytes, whole %d: ratio %.3f", sst.Size(), wst.Size(), ratio)
			}
			t.Logf("frames %d; video end %.4f/%.4f; audio end %.4f/%.4f; PSNR %.2f/%.2f dB; size %.3f×",
				sn, sv, wv, sa, wa, ss, ws, float64(sst.Size())/float64(wst.Size()))
		})
	}
}

// TestPartChecks: a part cut short on its way is caught before the stitch,
// and a list with a part missing or out of order is refused.
func TestPartChecks(t *testing.T) {
	ctx := context.Background()
	src := splitSource(t, "25", 0, ".mp4")
	pr, r := &probe.Prober{}, &ffmpeg.Runner{}
	info, err := pr.Probe(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindVideo, Input: src}, info, encoders.BackendSoftware)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := encoders.Split(plan, 300, 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, encoders.PartFile(parts[1], plan.Format))
	argv, err := ffmpeg.PartArgs(plan, ffmpeg.Device{}, parts[1], src, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, argv, 0, parts[1].Frames, func(encoders.Progress) {}); err != nil {
		t.Fatal(err)
	}
	if err := ffmpeg.CheckPart(ctx, r, pr, plan, parts[1], out); err != nil {
		t.Fatalf("a whole part: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, data[:len(data)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ffmpeg.CheckPart(ctx, r, pr, plan, parts[1], out); ittybit.KindOf(err) != ittybit.ErrEncodeFailed {
		t.Errorf("a part cut short: %v, want encode_failed", err)
	}

	names := []string{"a.nut", "b.nut", "c.nut", "audio"}
	list := filepath.Join(dir, "list")
	swapped := []encoders.Part{parts[1], parts[0], parts[2], parts[3]}
	if err := ffmpeg.WriteConcatList(list, plan, swapped, names); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("parts out of order: %v", err)
	}
	missing := []encoders.Part{parts[0], parts[2], parts[3]}
	if err := ffmpeg.WriteConcatList(list, plan, missing, names[:3]); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a part missing: %v", err)
	}
	if err := ffmpeg.WriteConcatList(list, plan, parts, []string{"../a.nut", "b.nut", "c.nut", ""}); err == nil {
		t.Error("a part named outside the folder was listed")
	}
}

// TestEncodeThreads: with the agent's --encode-threads 1, every software
// video encoder still runs and makes a file that decodes cleanly.
func TestEncodeThreads(t *testing.T) {
	ctx := context.Background()
	src := clips.Path(t, encoderstest.Silent)
	pr, r := &probe.Prober{}, &ffmpeg.Runner{}
	info, err := pr.Probe(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, codec := range []string{encoders.CodecH264, encoders.CodecH265, encoders.CodecVP9, encoders.CodecAV1} {
		plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindVideo, Input: src, Options: encoders.Options{Codec: codec}}, info, encoders.BackendSoftware)
		if err != nil {
			t.Fatal(err)
		}
		plan.Threads = 1
		out := filepath.Join(t.TempDir(), "out"+encoders.Extension(plan.Format))
		argv, err := ffmpeg.Args(plan, src, out)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(ctx, argv, plan.Duration, 0, func(encoders.Progress) {}); err != nil {
			t.Errorf("%s with one thread: %v", codec, err)
			continue
		}
		if err := r.Decode(ctx, out); err != nil {
			t.Errorf("%s with one thread: the result does not decode: %v", codec, err)
		}
	}
}

// TestStitchChecksJoins: a part from another encode (half the size, the
// right frames), stitched in, is caught where it joins the others.
func TestStitchChecksJoins(t *testing.T) {
	ctx := context.Background()
	src := splitSource(t, "25", 0, ".mp4")
	pr, r := &probe.Prober{}, &ffmpeg.Runner{}
	info, err := pr.Probe(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	plans := map[bool]encoders.Plan{}
	for _, small := range []bool{false, true} {
		spec := encoders.Spec{Kind: encoders.KindVideo, Input: src}
		if small {
			spec.Options.Width = encoders.Px(160)
		}
		if plans[small], err = encoders.NewPlan(spec, info, encoders.BackendSoftware); err != nil {
			t.Fatal(err)
		}
	}
	plan := plans[false]
	parts, err := encoders.Split(plan, 300, 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := make([]string, len(parts))
	for i, part := range parts {
		files[i] = filepath.Join(dir, encoders.PartFile(part, plan.Format))
		var argv []string
		if part.Kind == encoders.PartAudio {
			argv, err = ffmpeg.AudioPartArgs(plan, src, files[i])
		} else {
			argv, err = ffmpeg.PartArgs(plans[part.Index == 1], ffmpeg.Device{}, part, src, files[i])
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(ctx, argv, 0, part.Frames, func(encoders.Progress) {}); err != nil {
			t.Fatalf("part %d: %v", part.Index, err)
		}
		if err := ffmpeg.CheckPart(ctx, r, pr, plan, part, files[i]); err != nil {
			t.Fatalf("part %d on its own: %v", part.Index, err)
		}
	}
	_, err = ffmpeg.Stitch(ctx, r, pr, plan, parts, files, filepath.Join(dir, "out.mp4"))
	if ittybit.KindOf(err) != ittybit.ErrEncodeFailed {
		t.Fatalf("a part of another size stitched in: %v, want encode_failed", err)
	}
	t.Logf("refused: %v", err)
}

// TestHLSFanOut encodes a ladder fanned out, each rendition and the sound
// a part of its own, checks every part as it would land, and assembles
// them: the result is a ladder like the one encoded in one run, its
// segments starting on key frames at the same times in every rendition,
// and the same times as the one-run ladder's.
func TestHLSFanOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := clips.Path(t, encoderstest.Long)
	pr := &probe.Prober{}
	info, err := pr.Probe(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindAdaptive, Input: in, Options: encoders.Options{Quality: encoders.QualityLow}}, info, encoders.BackendSoftware)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := encoders.SplitRenditions(plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 || parts[0].Kind != encoders.PartRendition || parts[1].Rendition != 1 || parts[2].Kind != encoders.PartAudio {
		t.Fatalf("parts %+v, want two renditions and the sound", parts)
	}
	dir := t.TempDir()
	sw := &ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: pr}
	files := make([]string, len(parts))
	for i, part := range parts {
		files[i] = filepath.Join(dir, "parts", encoders.PartFile(part, plan.Format))
		job := plan
		job.Part = &parts[i]
		f, err := sw.Encode(ctx, encoders.Job{Plan: job, Input: in, Output: files[i]}, func(encoders.Progress) {})
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if f.URL != files[i] || f.Filesize == 0 {
			t.Errorf("part %d: %+v", i, f)
		}
		if err := ffmpeg.CheckPart(ctx, sw.Runner, pr, plan, part, files[i]); err != nil {
			t.Fatalf("part %d as it lands: %v", i, err)
		}
	}
	// A part of another rendition, or cut short, is refused as it lands.
	if err := ffmpeg.CheckPart(ctx, sw.Runner, pr, plan, parts[0], files[1]); ittybit.KindOf(err) != ittybit.ErrEncodeFailed {
		t.Errorf("rendition 1's part as rendition 0: %v, want encode_failed", err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.tar")
	if err := os.WriteFile(short, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ffmpeg.CheckPart(ctx, sw.Runner, pr, plan, parts[0], short); ittybit.KindOf(err) != ittybit.ErrEncodeFailed {
		t.Errorf("a part cut short: %v, want encode_failed", err)
	}

	out := filepath.Join(dir, "stream", "master.m3u8")
	f, err := ffmpeg.Stitch(ctx, sw.Runner, pr, plan, parts, files, out)
	if err != nil {
		t.Fatal(err)
	}
	fanned := checkLadder(t, f)
	whole, _ := encode(t, encoderstest.Long, encoders.KindAdaptive, `{"quality":"low"}`)
	oneRun := checkLadder(t, whole)
	if !slices.EqualFunc(fanned, oneRun, func(a, b float64) bool { return math.Abs(a-b) < 0.002 }) {
		t.Errorf("segments start at %v fanned out, %v in one run", fanned, oneRun)
	}
	for i, r := range f.Renditions {
		w := whole.Renditions[i]
		if ratio := float64(r.Filesize) / float64(w.Filesize); ratio < 0.97 || ratio > 1.03 {
			t.Errorf("rendition %d: %d bytes fanned out, %d in one run", i, r.Filesize, w.Filesize)
		}
	}
}

// TestHLSTimeSplit splits a ladder in time as well as by rendition: each
// rendition in runs of whole segments, each run encoded apart, then joined
// and cut into segments at the stitch. The result has one init segment per
// rendition, every frame of the source once with timestamps increasing
// across the joins, segments starting on key frames at the same times in
// every rendition and as the ladder encoded in one run, and renditions of
// about its size.
func TestHLSTimeSplit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := clips.Path(t, encoderstest.Long)
	pr := &probe.Prober{}
	info, err := pr.Probe(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := pr.CountFrames(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := encoders.NewPlan(encoders.Spec{Kind: encoders.KindAdaptive, Input: in, Options: encoders.Options{Quality: encoders.QualityLow}}, info, encoders.BackendSoftware)
	if err != nil {
		t.Fatal(err)
	}
	plan.HLS.SegmentSeconds = 2 // an 8 s clip in four segments, each a run
	parts, err := encoders.SplitLadder(plan, frames, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 9 || parts[3].Rendition != 0 || parts[4].Rendition != 1 || parts[4].First != 0 || parts[5].First != 60 ||
		parts[7].Frames != frames-180 || parts[8].Kind != encoders.PartAudio {
		t.Fatalf("parts %+v, want four runs of each of two renditions and the sound", parts)
	}
	dir := t.TempDir()
	sw := &ffmpeg.Software{Runner: &ffmpeg.Runner{}, Prober: pr}
	files := make([]string, len(parts))
	for i, part := range parts {
		files[i] = filepath.Join(dir, "parts", encoders.PartFile(part, plan.Format))
		job := plan
		job.Part = &parts[i]
		if _, err := sw.Encode(ctx, encoders.Job{Plan: job, Input: in, Output: files[i]}, func(encoders.Progress) {}); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if err := ffmpeg.CheckPart(ctx, sw.Runner, pr, plan, part, files[i]); err != nil {
			t.Fatalf("part %d as it lands: %v", i, err)
		}
		if part.Kind == encoders.PartRendition {
			if keys := encoderstest.Keyframes(t, files[i]); len(keys) != int(part.Frames/60) && len(keys) != int(part.Frames+59)/60 {
				t.Errorf("part %d (%d frames) has key frames at %v, want one every 2 s", i, part.Frames, keys)
			}
		}
	}
	// A run shorter than its plan is refused as it lands.
	longer := parts[3]
	longer.Frames += 30
	if err := ffmpeg.CheckPart(ctx, sw.Runner, pr, plan, longer, files[3]); ittybit.KindOf(err) != ittybit.ErrEncodeFailed {
		t.Errorf("a run of %d frames as one of %d: %v, want encode_failed", parts[3].Frames, longer.Frames, err)
	}

	out := filepath.Join(dir, "stream", "master.m3u8")
	f, err := ffmpeg.Stitch(ctx, sw.Runner, pr, plan, parts, files, out)
	if err != nil {
		t.Fatal(err)
	}
	split := checkLadder(t, f)
	whole := plan
	wf, err := sw.Encode(ctx, encoders.Job{Plan: whole, Input: in, Output: filepath.Join(dir, "whole", "master.m3u8")}, func(encoders.Progress) {})
	if err != nil {
		t.Fatal(err)
	}
	oneRun := checkLadder(t, wf)
	if !slices.EqualFunc(split, oneRun, func(a, b float64) bool { return math.Abs(a-b) < 0.002 }) {
		t.Errorf("segments start at %v split in time, %v in one run", split, oneRun)
	}
	for i, rend := range plan.HLS.Renditions {
		r := f.Renditions[i]
		folder := filepath.Join(filepath.Dir(out), rend.Name)
		inits, _ := filepath.Glob(filepath.Join(folder, "init*.mp4"))
		if len(inits) != 1 {
			t.Errorf("rendition %d has init segments %v, want one", i, inits)
		}
		n, _, _, increasing := encoderstest.Ends(t, filepath.Join(folder, "index.m3u8"))
		if int64(n) != frames || !increasing {
			t.Errorf("rendition %d: %d frames (want %d), timestamps increasing %v", i, n, frames, increasing)
		}
		w := wf.Renditions[i]
		ratio := float64(r.Filesize) / float64(w.Filesize)
		if ratio < 0.97 || ratio > 1.03 {
			t.Errorf("rendition %d: %d bytes split in time, %d in one run", i, r.Filesize, w.Filesize)
		}
		t.Logf("rendition %d: %d bytes split in time, %.3f× one run", i, r.Filesize, ratio)
	}
}
