package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

// TestLocalMatchesCluster runs the seed's five examples, and a JPEG
// input, in the CLI's local mode and through `ittybit dev`, and compares
// the two task objects field by field: the local mode is the cluster's
// steps in one process, so only ids, times, nodes and URLs may differ.
func TestLocalMatchesCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clip := mustRead(t, clips.Path(t, encoderstest.SmallHD))
	// The seed's inputs, served from loopback: each example reads the
	// name its request gives.
	for _, name := range []string{"upload.mov", "interview.mp4", "video.mp4"} {
		if err := os.WriteFile(filepath.Join(dir, name), clip, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Wall.jpg"), testJPEG(t, 640, 360), 0o644); err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(files.Close)

	s3 := s3test.Start(t)
	s3.MakeBucket(t, "my-bucket") // the seed's output_s3 bucket
	dev := &proc{name: "dev", dir: t.TempDir(), env: s3Env(s3)}
	dev.args = []string{"dev", "--data", dev.DataDir()}
	dev.mustStart(t)
	mustReady(t, dev)
	users := client.New(dev.URL(), testAPIKey)

	type example struct {
		name string
		body []byte
	}
	var examples []example
	for _, name := range seedNames {
		examples = append(examples, example{name, seedBody(t, name)})
	}
	examples = append(examples, example{"jpeg", []byte(`{"input":"https://example.com/Wall.jpg","kind":"image","options":{"format":"webp","width":320}}`)})

	// Every example in the cluster at once; locally one after the other.
	reqs := make([]api.CreateTaskRequest, len(examples))
	ids := make([]string, len(examples))
	for i, ex := range examples {
		body := strings.Replace(string(ex.body), "https://example.com", files.URL, 1)
		if err := json.Unmarshal([]byte(body), &reqs[i]); err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		task, err := users.Create(context.Background(), reqs[i], client.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: create: %v", ex.name, err)
		}
		ids[i] = task.ID
	}
	for i, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			local := runLocal(t, reqs[i])
			cluster := waitTask(t, users, ids[i], 3*time.Minute)
			if cluster.Status != api.TaskCompleted || local.Status != api.TaskCompleted {
				t.Fatalf("cluster %s %+v; local %s %+v", cluster.Status, cluster.Error, local.Status, local.Error)
			}
			if diff := cmp.Diff(comparable(t, cluster), comparable(t, local), cmp.Comparer(nearly)); diff != "" {
				t.Errorf("local task differs from the cluster's (-cluster +local):\n%s", diff)
			}
		})
	}
}

// runLocal runs req with the CLI's local mode (its default) and returns
// the task it prints with --json. The result goes to the default output
// name, in a fresh folder; an s3:// output becomes a local file.
func runLocal(t *testing.T, req api.CreateTaskRequest) *api.Task {
	t.Helper()
	cmd := map[string]string{"video": "video", "audio": "audio", "image": "image", "adaptive_video": "adaptive"}[string(req.Kind)]
	args := []string{cmd, "-i", req.Input, "--json"}
	var opts map[string]any
	raw, err := json.Marshal(req.Options)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &opts); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--"+k, fmt.Sprint(opts[k]))
	}
	if req.Output != "" {
		args = append(args, "-o", filepath.Base(req.Output))
	}
	c := exec.Command(ittybitBin, args...)
	c.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("ittybit %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var task api.Task
	if err := json.Unmarshal(stdout.Bytes(), &task); err != nil {
		t.Fatalf("ittybit %s printed no task: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return &task
}

// comparable is a task's JSON without what differs between any two runs
// of the same task: ids, times, the node and URLs (the task's output is a
// URL, a step's output an object whose URLs go).
func comparable(t *testing.T, task *api.Task) any {
	t.Helper()
	raw, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	v := mustJSON(t, raw).(map[string]any)
	delete(v, "output")
	var strip func(any)
	strip = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for _, k := range []string{"id", "created_at", "started_at", "finished_at", "updated_at", "node", "url"} {
				delete(x, k)
			}
			// An HLS ladder's renditions come out a few bytes apart from one
			// run to the next on a loaded machine (five x264 encoders fed by
			// one filter graph, each with frame threads and VBV): sizes and
			// bitrates are compared within 1 % (nearly).
			for _, k := range []string{"filesize", "bitrate"} {
				if n, ok := x[k].(json.Number); ok {
					if f, err := n.Float64(); err == nil && f > 0 {
						x[k] = approx(f)
					}
				}
			}
			for _, e := range x {
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(v)
	return v
}

// approx is a size or bitrate that two runs of the same encode may give a
// little apart.
type approx float64

// nearly says whether two sizes or bitrates are within 1 % of each other.
func nearly(a, b approx) bool { return math.Abs(float64(a-b)) <= 0.01*math.Max(float64(a), float64(b)) }

// testJPEG is a w×h gradient as a JPEG file.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
