// Package encoderstest generates small media clips with real ffmpeg (lavfi
// sources) and inspects results with real ffprobe, for the tests of every
// package that encodes. It uses its own ffprobe calls, independent of
// encoders/probe, so tests check our outputs with an outside eye.
package encoderstest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Clip describes a generated test clip.
type Clip struct {
	Name    string
	Width   int
	Height  int
	FPS     int
	Seconds float64
	// Audio adds a stereo sine tone; AudioOnly makes a WAV with no picture.
	Audio     bool
	AudioOnly bool
	// Rotate sets display rotation metadata (a phone held upright).
	Rotate int
	// Ext picks the container by file extension: ".mp4", ".mov", ".wav".
	Ext string
}

// The clips the tests use: odd sizes, a rotated phone clip, video without
// audio, audio only, 60 fps, and one long enough for several HLS segments.
var (
	Odd      = Clip{Name: "odd", Width: 721, Height: 405, FPS: 30, Seconds: 2, Audio: true, Ext: ".mov"}
	Rotated  = Clip{Name: "rotated", Width: 640, Height: 360, FPS: 30, Seconds: 2, Audio: true, Rotate: 90, Ext: ".mp4"}
	Silent   = Clip{Name: "silent", Width: 320, Height: 240, FPS: 30, Seconds: 2, Ext: ".mp4"}
	Sound    = Clip{Name: "sound", Seconds: 3, AudioOnly: true, Ext: ".wav"}
	Sixty    = Clip{Name: "sixty", Width: 320, Height: 180, FPS: 60, Seconds: 2, Audio: true, Ext: ".mp4"}
	Long     = Clip{Name: "long", Width: 640, Height: 360, FPS: 30, Seconds: 8, Audio: true, Ext: ".mov"}
	SmallHD  = Clip{Name: "smallhd", Width: 480, Height: 270, FPS: 30, Seconds: 6, Audio: true, Ext: ".mov"}
	Portrait = Clip{Name: "portrait", Width: 360, Height: 640, FPS: 30, Seconds: 1, Audio: false, Ext: ".mp4"}
)

// Clips makes clips on demand into one folder and reuses them.
type Clips struct {
	dir  string
	mu   sync.Mutex
	made map[string]*sync.Once
	errs map[string]error
}

// NewClips returns a Clips writing into a new temporary folder; Close
// removes it. Call it from TestMain.
func NewClips() *Clips {
	dir, err := os.MkdirTemp("", "ittybit-clips-")
	if err != nil {
		panic(err)
	}
	return &Clips{dir: dir, made: map[string]*sync.Once{}, errs: map[string]error{}}
}

// Close removes the generated clips.
func (c *Clips) Close() { os.RemoveAll(c.dir) }

// Path returns the path of clip, generating it on first use.
func (c *Clips) Path(tb testing.TB, clip Clip) string {
	tb.Helper()
	c.mu.Lock()
	once, ok := c.made[clip.Name]
	if !ok {
		once = &sync.Once{}
		c.made[clip.Name] = once
	}
	c.mu.Unlock()
	path := filepath.Join(c.dir, clip.Name+clip.Ext)
	once.Do(func() {
		err := generate(clip, path)
		c.mu.Lock()
		c.errs[clip.Name] = err
		c.mu.Unlock()
	})
	c.mu.Lock()
	err := c.errs[clip.Name]
	c.mu.Unlock()
	if err != nil {
		tb.Fatalf("generate clip %s: %v", clip.Name, err)
	}
	return path
}

func generate(c Clip, path string) error {
	dur := strconv.FormatFloat(c.Seconds, 'f', -1, 64)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}
	if c.AudioOnly {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+dur,
			"-af", "pan=stereo|c0=c0|c1=c0", "-c:a", "pcm_s16le", path)
		return ffmpeg(args...)
	}
	// testsrc2 draws even sizes only; odd ones are scaled to.
	src := fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s,scale=%d:%d,setsar=1",
		c.Width&^1, c.Height&^1, c.FPS, dur, c.Width, c.Height)
	args = append(args, "-f", "lavfi", "-i", src)
	if c.Audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+dur)
	}
	pixFmt := "yuv420p"
	if c.Width%2 != 0 || c.Height%2 != 0 {
		pixFmt = "yuv444p" // 4:2:0 needs even sizes; 4:4:4 keeps the odd one
	}
	args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pixFmt, "-g", strconv.Itoa(c.FPS))
	if c.Audio {
		args = append(args, "-c:a", "aac", "-ac", "2", "-b:a", "96k")
	}
	tmp := path
	if c.Rotate != 0 {
		tmp = path + ".raw" + c.Ext
	}
	if err := ffmpeg(append(args, tmp)...); err != nil {
		return err
	}
	if c.Rotate != 0 {
		defer os.Remove(tmp)
		return ffmpeg("-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", tmp, "-c", "copy",
			"-metadata:s:v:0", "rotate="+strconv.Itoa(c.Rotate), path)
	}
	return nil
}

func ffmpeg(args ...string) error {
	out, err := exec.Command("ffmpeg", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Stream is what ffprobe reports of one stream.
type Stream struct {
	CodecType    string `json:"codec_type"`
	CodecName    string `json:"codec_name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	PixFmt       string `json:"pix_fmt"`
	RFrameRate   string `json:"r_frame_rate"`
	AvgFrameRate string `json:"avg_frame_rate"`
	Channels     int    `json:"channels"`
	SampleRate   string `json:"sample_rate"`
	Duration     string `json:"duration"`
	Tags         map[string]string
	SideData     []map[string]any `json:"side_data_list"`
}

// Report is what ffprobe reports of a file.
type Report struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		Size       string `json:"size"`
	} `json:"format"`
	Streams []Stream `json:"streams"`
}

// Video returns the first video stream, or nil.
func (r Report) Video() *Stream { return r.stream("video") }

// Audio returns the first audio stream, or nil.
func (r Report) Audio() *Stream { return r.stream("audio") }

func (r Report) stream(kind string) *Stream {
	for i := range r.Streams {
		if r.Streams[i].CodecType == kind {
			return &r.Streams[i]
		}
	}
	return nil
}

// Duration returns the container's duration in seconds.
func (r Report) Duration() float64 {
	d, _ := strconv.ParseFloat(r.Format.Duration, 64)
	return d
}

// Probe runs ffprobe on path (a file or an HLS playlist).
func Probe(tb testing.TB, path string) Report {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		tb.Fatalf("ffprobe %s: %v %s", path, err, stderr)
	}
	var r Report
	if err := json.Unmarshal(out, &r); err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	return r
}

// Keyframes returns the presentation times of the key frames of the first
// video stream of path.
func Keyframes(tb testing.TB, path string) []float64 {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
		"-show_entries", "frame=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe keyframes %s: %v", path, err)
	}
	var ts []float64
	for _, line := range strings.Fields(string(out)) {
		f, err := strconv.ParseFloat(strings.TrimSuffix(line, ","), 64)
		if err == nil {
			ts = append(ts, f)
		}
	}
	return ts
}

// Pixel returns the RGB color of the pixel at x, y of the first frame of
// path (an image or a video).
func Pixel(tb testing.TB, path string, x, y int) [3]byte {
	tb.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-frames:v", "1",
		"-vf", fmt.Sprintf("crop=1:1:%d:%d,format=rgb24", x, y), "-f", "rawvideo", "-").Output()
	if err != nil || len(out) < 3 {
		tb.Fatalf("read pixel %d,%d of %s: %v (%d bytes)", x, y, path, err, len(out))
	}
	return [3]byte{out[0], out[1], out[2]}
}

// Rate parses an ffprobe frame rate such as "30000/1001".
func Rate(s string) float64 {
	a, b, ok := strings.Cut(s, "/")
	n, _ := strconv.ParseFloat(a, 64)
	if !ok {
		return n
	}
	d, _ := strconv.ParseFloat(b, 64)
	if d == 0 {
		return 0
	}
	return n / d
}

// Ends reads a file's packets: how many video frames it holds, where its
// picture and sound end (the last packet's time plus its duration), and
// whether the picture's timestamps strictly increase (in presentation
// order).
func Ends(tb testing.TB, path string) (frames int, video, audio float64, increasing bool) {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time,duration_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	var pts []float64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		p, _ := strconv.ParseFloat(f[1], 64)
		d, _ := strconv.ParseFloat(f[2], 64)
		switch f[0] {
		case "video":
			pts = append(pts, p)
			video = max(video, p+d)
		case "audio":
			audio = max(audio, p+d)
		}
	}
	slices.Sort(pts)
	increasing = true
	for i := 1; i < len(pts); i++ {
		if pts[i] <= pts[i-1] {
			increasing = false
		}
	}
	return len(pts), video, audio, increasing
}

var psnrAverage = regexp.MustCompile(`average:([0-9.]+|inf)`)

// PSNR is a result's mean PSNR against the source, frames paired by
// index (so that a container's rounded timestamps pair nothing wrong).
func PSNR(tb testing.TB, result, source string) float64 {
	tb.Helper()
	const pair = "settb=1/1000000,setpts=N*1000"
	out, err := exec.Command("ffmpeg", "-hide_banner", "-i", result, "-i", source,
		"-lavfi", "[0:v]"+pair+"[a];[1:v]"+pair+"[b];[a][b]psnr", "-f", "null", "-").CombinedOutput()
	if err != nil {
		tb.Fatalf("psnr: %v\n%s", err, out)
	}
	m := psnrAverage.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("psnr printed no average:\n%s", out)
	}
	if string(m[1]) == "inf" {
		return math.Inf(1)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
