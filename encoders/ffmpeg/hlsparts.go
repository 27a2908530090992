package ffmpeg

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/encoders"
)

// An adaptive ladder fanned out (encoders.SplitRenditions) encodes each
// rendition, and the sound, as a part of its own on its own node. A part
// is one rendition's folder (playlist, init segment, segments), kept as a
// tar archive; the stitch unpacks them side by side and writes the master
// playlist from what they measure, as encodeHLS does for a ladder encoded
// in one run.

// HLSPartPlan is the plan of one part of an adaptive plan fanned out: the
// ladder cut down to the part's rendition (without sound), or to the
// sound alone (without picture, in software).
func HLSPartPlan(plan encoders.Plan, part encoders.Part) (encoders.Plan, error) {
	if plan.HLS == nil {
		return encoders.Plan{}, fmt.Errorf("not an adaptive plan")
	}
	p := plan
	p.Part = nil
	h := *plan.HLS
	switch part.Kind {
	case encoders.PartRendition:
		if part.Rendition < 0 || part.Rendition >= len(plan.HLS.Renditions) {
			return encoders.Plan{}, fmt.Errorf("rendition %d: the ladder has %d", part.Rendition, len(plan.HLS.Renditions))
		}
		h.Renditions = []encoders.Rendition{plan.HLS.Renditions[part.Rendition]}
		p.Audio = nil
		if part.Chunk() {
			// A run of the rendition: its frames from the seek before
			// them, key frames where the whole ladder's fall, in NUT.
			fps, ok := encoders.ParseRatio(plan.Source.FrameRate)
			if !ok || fps <= 0 {
				return encoders.Plan{}, fmt.Errorf("the source's frame rate %q is unknown", plan.Source.FrameRate)
			}
			h.FirstFrame = part.First
			p.Start, p.Trim, p.Duration, p.Format = part.Start, false, float64(part.Frames)/fps, partFormat
		}
	case encoders.PartAudio:
		if plan.Audio == nil {
			return encoders.Plan{}, fmt.Errorf("the plan has no sound")
		}
		h.Renditions = nil
		p.Video, p.Backend = nil, encoders.BackendSoftware
	default:
		return encoders.Plan{}, fmt.Errorf("a ladder has no %s parts", part.Kind)
	}
	p.HLS = &h
	return p, nil
}

// renditionPartArgs returns the ffmpeg arguments that encode a run of one
// rendition of a ladder split in time (encoders.SplitLadder) from input to
// output: exactly its frames, in NUT.
func renditionPartArgs(plan encoders.Plan, part encoders.Part, input, output string, args argsFunc) ([]string, error) {
	if part.Kind != encoders.PartRendition || part.Frames <= 0 {
		return nil, fmt.Errorf("part %d is not a run of a rendition", part.Index)
	}
	p, err := HLSPartPlan(plan, part)
	if err != nil {
		return nil, err
	}
	a, err := args(p, input, output)
	if err != nil {
		return nil, err
	}
	return withFrames(a, part.Frames), nil
}

// withFrames drops the tag an MP4 muxer would take from a part's
// arguments (NUT takes the codec's own; the stitch tags for MP4) and
// keeps exactly frames of the picture.
func withFrames(a []string, frames int64) []string {
	if i := slices.Index(a, "-tag:v"); i >= 0 {
		a = slices.Delete(a, i, i+2)
	}
	out := a[len(a)-1]
	return append(a[:len(a)-1:len(a)-1], "-frames:v", strconv.FormatInt(frames, 10), out)
}

// hlsPartFolder is the folder a part of a ladder writes: its rendition's
// name, or the audio rendition's.
func hlsPartFolder(plan encoders.Plan, part encoders.Part) string {
	if part.Kind == encoders.PartRendition {
		return plan.HLS.Renditions[part.Rendition].Name
	}
	return hlsAudioName
}

// encodeHLSPart encodes one part of a ladder fanned out into a staging
// folder, then packs the part's folder into job.Output.
func encodeHLSPart(ctx context.Context, r *Runner, job encoders.Job, args argsFunc, progress func(encoders.Progress)) (encoders.File, error) {
	part := *job.Plan.Part
	p, err := HLSPartPlan(job.Plan, part)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "part %d: %v", part.Index, err)
	}
	dir := filepath.Dir(job.Output)
	stage, err := stageBeside(job.Output, ".ittybit-hls-part-*")
	if err != nil {
		return encoders.File{}, err
	}
	defer os.RemoveAll(stage)
	argv, err := args(p, job.Input, stage)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "build ffmpeg arguments: %v", err)
	}
	if err := r.Run(ctx, argv, p.Duration, expectedFrames(p), progress); err != nil {
		return encoders.File{}, err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(job.Output)+".part")
	defer os.Remove(tmp)
	size, err := packFolder(stage, hlsPartFolder(job.Plan, part), tmp)
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrEncodeFailed, "pack part %d: %v", part.Index, err)
	}
	if err := os.Rename(tmp, job.Output); err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrInternal, "publish the part: %v", err)
	}
	return encoders.File{Object: "file", Kind: string(part.Kind), URL: job.Output, Format: "tar", Filesize: size}, nil
}

// packFolder writes the regular files of root/name into a tar archive at
// out, as name/<file>, and returns the archive's size.
func packFolder(root, name, out string) (int64, error) {
	entries, err := os.ReadDir(filepath.Join(root, name))
	if err != nil {
		return 0, err
	}
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := addFile(tw, filepath.Join(root, name, e.Name()), name+"/"+e.Name()); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

func addFile(tw *tar.Writer, path, name string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}

// maxHLSPartFiles bounds what one part's archive may unpack to: a
// rendition of a ten-hour source in one-second segments fits.
const maxHLSPartFiles = 40000

// unpackPart unpacks a part's archive under root and returns the folder
// it holds. The archive comes from a plugin: only regular files, one
// folder deep, with plain names, are accepted.
func unpackPart(archive, root string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	folder := ""
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		dir, file, ok := strings.Cut(h.Name, "/")
		switch {
		case n >= maxHLSPartFiles:
			return "", fmt.Errorf("more than %d files", maxHLSPartFiles)
		case h.Typeflag != tar.TypeReg || !ok || !plainName(dir) || !plainName(file) || (folder != "" && dir != folder):
			return "", fmt.Errorf("unexpected entry %q", h.Name)
		}
		if folder == "" {
			folder = dir
			if err := os.MkdirAll(filepath.Join(root, folder), 0o755); err != nil {
				return "", err
			}
		}
		out, err := os.OpenFile(filepath.Join(root, folder, file), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	if folder == "" {
		return "", fmt.Errorf("the archive is empty")
	}
	return folder, nil
}

// plainName: a file name without a path, not "." or "..".
func plainName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && filepath.Base(s) == s
}

// checkHLSPart checks a part of a ladder as it lands: its archive holds
// one folder of the right name, whose playlist names segments that are
// all there, last as long as the plan (within a second), and decode
// without an error, init segment first.
func checkHLSPart(ctx context.Context, r *Runner, plan encoders.Plan, part encoders.Part, path string) error {
	fail := func(format string, args ...any) error {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "part %d: %s", part.Index, fmt.Sprintf(format, args...))
	}
	if plan.HLS == nil || (part.Kind == encoders.PartRendition && (part.Rendition < 0 || part.Rendition >= len(plan.HLS.Renditions))) {
		return fail("not a part of this ladder")
	}
	root, err := os.MkdirTemp(filepath.Dir(path), ".ittybit-check-*")
	if err != nil {
		return ittybit.Errorf(ittybit.ErrInternal, "check part %d: %v", part.Index, err)
	}
	defer os.RemoveAll(root)
	folder, err := unpackPart(path, root)
	if err != nil {
		return fail("%v", err)
	}
	if want := hlsPartFolder(plan, part); folder != want {
		return fail("holds %q, want %q", folder, want)
	}
	rep, err := readRendition(filepath.Join(root, folder))
	if err != nil {
		return fail("%v", err)
	}
	if plan.Duration > 0 && math.Abs(rep.duration-plan.Duration) > 1 {
		return fail("lasts %.3f s, want %.3f s", rep.duration, plan.Duration)
	}
	joined := filepath.Join(root, "joined.mp4")
	if err := joinSegments(filepath.Join(root, folder), joined); err != nil {
		return fail("%v", err)
	}
	if err := r.Decode(ctx, joined); err != nil {
		return fail("does not decode: %v", err)
	}
	return nil
}

// joinSegments writes a rendition's init segment and its segments, in
// playlist order, one after another into out: one fragmented MP4 file.
func joinSegments(dir, out string) error {
	data, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
	if err != nil {
		return err
	}
	pl, err := ParseMediaPlaylist(data)
	if err != nil {
		return err
	}
	names := []string{}
	if pl.Map != "" {
		names = append(names, filepath.Base(pl.Map))
	}
	for _, s := range pl.Segments {
		names = append(names, filepath.Base(s.URI))
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, n := range names {
		src, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		_, err = io.Copy(f, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	return f.Close()
}

// assembleHLS unpacks the parts of a ladder fanned out beside output (the
// runs of a ladder split in time are joined and cut into segments first,
// packageRuns), checks that every rendition was cut into the same segments
// (their key frames fell at the same times), and publishes them with the
// master playlist at output, as encodeHLS does.
func assembleHLS(ctx context.Context, r *Runner, pr FrameCounter, plan encoders.Plan, parts []encoders.Part, files []string, output string) (encoders.File, error) {
	stage, err := stageBeside(output, ".ittybit-hls-*")
	if err != nil {
		return encoders.File{}, err
	}
	defer os.RemoveAll(stage)
	var runs []int
	for i, part := range parts {
		if part.Chunk() {
			runs = append(runs, i)
			continue
		}
		if _, err := unpackPart(files[i], stage); err != nil {
			return encoders.File{}, ittybit.Errorf(ittybit.ErrEncodeFailed, "unpack %s: %v", filepath.Base(files[i]), err)
		}
	}
	if len(runs) > 0 {
		if err := packageRuns(ctx, r, pr, plan, parts, files, stage); err != nil {
			return encoders.File{}, err
		}
	}
	if err := alignedSegments(plan, stage); err != nil {
		return encoders.File{}, err
	}
	return publishHLS(plan, stage, output)
}

// packageRuns joins each rendition's runs (a ladder split in time), in
// order, and cuts them into segments under stage in one ffmpeg process
// that copies every packet: one init segment per rendition, timestamps
// continuous across the runs, segments cut at the key frames the runs
// put where the ladder's fall. Each rendition is then checked whole: as
// many frames as the source, and a clean decode across every join.
func packageRuns(ctx context.Context, r *Runner, pr FrameCounter, plan encoders.Plan, parts []encoders.Part, files []string, stage string) error {
	fail := func(format string, args ...any) error {
		return ittybit.Errorf(ittybit.ErrEncodeFailed, "stitch: %s", fmt.Sprintf(format, args...))
	}
	fps, ok := encoders.ParseRatio(plan.Source.FrameRate)
	if !ok || fps <= 0 {
		return fail("the source's frame rate %q is unknown", plan.Source.FrameRate)
	}
	n := len(plan.HLS.Renditions)
	byRendition := make([][]encoders.Part, n)
	names := make([][]string, n)
	folder := ""
	for i, part := range parts {
		if !part.Chunk() {
			continue
		}
		if part.Kind != encoders.PartRendition || part.Rendition < 0 || part.Rendition >= n {
			return fail("part %d is not a run of this ladder's renditions", part.Index)
		}
		if d := filepath.Dir(files[i]); folder == "" {
			folder = d
		} else if d != folder {
			return ittybit.Errorf(ittybit.ErrInternal, "stitch: the runs are not in one folder")
		}
		byRendition[part.Rendition] = append(byRendition[part.Rendition], part)
		names[part.Rendition] = append(names[part.Rendition], filepath.Base(files[i]))
	}
	a := []string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-protocol_whitelist", "file"}
	var frames int64
	for k, rend := range plan.HLS.Renditions {
		if len(byRendition[k]) == 0 {
			return fail("rendition %s has no runs", rend.Name)
		}
		list := filepath.Join(folder, fmt.Sprintf("rendition-%d.ffconcat", k))
		if err := WriteConcatList(list, plan, byRendition[k], names[k]); err != nil {
			return fail("rendition %s: %v", rend.Name, err)
		}
		var total int64
		for _, p := range byRendition[k] {
			total += p.Frames
		}
		if k > 0 && total != frames {
			return fail("rendition %s has %d frames in its runs, %s %d", rend.Name, total, plan.HLS.Renditions[0].Name, frames)
		}
		frames = total
		a = append(a, "-f", "concat", "-safe", "1", "-i", list)
	}
	var streams []string
	for k, rend := range plan.HLS.Renditions {
		a = append(a, "-map", fmt.Sprintf("%d:v:0", k))
		streams = append(streams, fmt.Sprintf("v:%d,name:%s", k, rend.Name))
	}
	a = append(a, "-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1")
	a = append(a, hlsMuxArgs(plan.HLS.SegmentSeconds, stage, streams)...)
	if err := r.Run(ctx, a, 0, frames*int64(n), func(encoders.Progress) {}); err != nil {
		return err
	}
	for k, rend := range plan.HLS.Renditions {
		joined := filepath.Join(stage, fmt.Sprintf(".joined-%d.mp4", k))
		if err := joinSegments(filepath.Join(stage, rend.Name), joined); err != nil {
			return fail("rendition %s: %v", rend.Name, err)
		}
		got, err := pr.CountFrames(ctx, joined)
		if err != nil {
			return fail("rendition %s: %v", rend.Name, err)
		}
		if got != frames {
			return fail("rendition %s has %d frames, want %d", rend.Name, got, frames)
		}
		var joins []float64
		for _, p := range byRendition[k][1:] {
			joins = append(joins, (float64(p.First)+0.25)/fps)
		}
		err = r.DecodeAt(ctx, joined, joins, joinCheckSeconds)
		os.Remove(joined)
		if err != nil {
			return fail("rendition %s does not decode across its joins: %v", rend.Name, err)
		}
	}
	return nil
}

// alignedSegments checks that the renditions in stage were cut into
// segments of the same lengths, within a frame: encoded apart, their key
// frames must still fall at the same times.
func alignedSegments(plan encoders.Plan, stage string) error {
	var first []float64
	for i, r := range plan.HLS.Renditions {
		data, err := os.ReadFile(filepath.Join(stage, r.Name, "index.m3u8"))
		if err != nil {
			return ittybit.Errorf(ittybit.ErrEncodeFailed, "rendition %s: no playlist: %v", r.Name, err)
		}
		pl, err := ParseMediaPlaylist(data)
		if err != nil {
			return ittybit.Errorf(ittybit.ErrEncodeFailed, "rendition %s: %v", r.Name, err)
		}
		var lens []float64
		for _, s := range pl.Segments {
			lens = append(lens, s.Duration)
		}
		if i == 0 {
			first = lens
			continue
		}
		if len(lens) != len(first) {
			return ittybit.Errorf(ittybit.ErrEncodeFailed, "rendition %s has %d segments, %s %d: their key frames are not aligned",
				r.Name, len(lens), plan.HLS.Renditions[0].Name, len(first))
		}
		frame := 1 / max(renditionFPS(plan, r), 1)
		for k := range lens {
			if math.Abs(lens[k]-first[k]) > frame+1e-3 {
				return ittybit.Errorf(ittybit.ErrEncodeFailed, "segment %d of rendition %s lasts %.3f s, of %s %.3f s: their key frames are not aligned",
					k, r.Name, lens[k], plan.HLS.Renditions[0].Name, first[k])
			}
		}
	}
	return nil
}
