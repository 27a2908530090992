package container

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestImageCluster starts three `ittybit server` containers (every one the
// same way: --bootstrap-expect 3 and --join naming all three) and one
// `ittybit agent` container from the image, sharing managed storage on a
// podman volume, and runs the seed's video example through them: the input
// served from the test on loopback, the output probed with the image's
// ffprobe. It checks the image's health check on each container and that
// each stops cleanly on SIGTERM.
func TestImageCluster(t *testing.T) {
	p := mustPodman(t)
	began := time.Now()

	clip := p.in(t, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
		"-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "pipe:1")
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "clip.mp4", time.Time{}, bytes.NewReader(clip))
	}))
	t.Cleanup(src.Close)

	name := "ittybit-test-" + randomHex(t, 4)
	apiKey, nodeToken := "itty_"+randomHex(t, 16), "node_"+randomHex(t, 16)
	shared := name + "-shared"
	var started []string
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range started {
				t.Logf("%s logs:\n%s", c, p.logs(c))
			}
		}
		if len(started) > 0 {
			if _, err := p.output(t, append([]string{"rm", "-f", "-v"}, started...)...); err != nil {
				t.Error(err)
			}
		}
		if _, err := p.output(t, "volume", "rm", "-f", shared); err != nil {
			t.Error(err)
		}
	})
	p.mustOutput(t, "volume", "create", shared)
	// :U gives the volume to the container's user (uid 10001).
	volume := shared + ":/shared:U"

	ports := freePorts(t, 7)
	httpAddr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	var joins, servers, bases []string
	for i := range 3 {
		joins = append(joins, "--join", "http://"+httpAddr(i))
		servers = append(servers, "--server", "http://"+httpAddr(i))
		bases = append(bases, "http://"+httpAddr(i))
	}
	for i := range 3 {
		ctr := fmt.Sprintf("%s-cp-%d", name, i+1)
		started = append(started, ctr)
		args := []string{"-d", "--name", ctr, "-v", volume,
			"-e", "ITTYBIT_API_KEY=" + apiKey, "-e", "ITTYBIT_NODE_TOKEN=" + nodeToken,
			"-e", "HEALTHCHECK_URL=http://" + httpAddr(i) + "/healthz",
			p.image, "server", "--node-id", fmt.Sprintf("cp-%d", i+1),
			"--http", httpAddr(i), "--raft", "127.0.0.1:" + strconv.Itoa(ports[3+i]), "--data", "/data",
			"--storage", "/shared/files", "--allow-private-inputs", "--bootstrap-expect", "3"}
		p.mustOutput(t, p.run(append(args, joins...)...)...)
	}
	agent := name + "-agent"
	started = append(started, agent)
	metrics := "127.0.0.1:" + strconv.Itoa(ports[6])
	p.mustOutput(t, p.run(append([]string{"-d", "--name", agent, "-v", volume,
		"-e", "ITTYBIT_NODE_TOKEN=" + nodeToken, "-e", "HEALTHCHECK_URL=http://" + metrics + "/metrics",
		p.image, "agent", "--name", "agent-1", "--storage", "/shared/files", "--work-dir", "/data/work",
		"--allow-private-inputs", "--metrics", metrics}, servers...)...)...)

	for _, base := range bases {
		wait.For(t, base+"/readyz", 2*time.Minute, func() error { return get(base + "/readyz") })
	}
	wait.For(t, "the agent's metrics", time.Minute, func() error { return get("http://" + metrics + "/metrics") })
	t.Logf("cluster ready %v after the start", time.Since(began).Round(time.Millisecond))

	t.Run("health checks pass", func(t *testing.T) {
		for _, c := range started {
			if out, err := p.output(t, "healthcheck", "run", c); err != nil {
				t.Errorf("%s: %v %s", c, err, out)
			}
		}
	})

	t.Run("the seed's video example completes", func(t *testing.T) {
		var req api.CreateTaskRequest
		if err := json.Unmarshal(seedBody(t, "video"), &req); err != nil {
			t.Fatal(err)
		}
		req.Input = src.URL + "/clip.mp4"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		submitted := time.Now()
		// Any node takes requests: the last, which is probably a follower.
		task, err := client.New(bases[2], apiKey).Create(ctx, req, client.CreateOptions{})
		if err != nil {
			t.Fatalf("POST /tasks: %v", err)
		}
		task, err = client.New(bases[1], apiKey).Wait(ctx, task.ID, 250*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("wait for %s: %v", task.ID, err)
		}
		if task.Status != api.TaskCompleted || task.Output == nil {
			t.Fatalf("task %s: %s, error %+v", task.ID, task.Status, task.Error)
		}
		t.Logf("task %s completed in %v", task.ID, time.Since(submitted).Round(time.Millisecond))
		for _, s := range task.Steps {
			if s.Node == nil || *s.Node != "agent-1" {
				t.Errorf("step %s ran on %v, want agent-1", s.Kind, s.Node)
			}
		}
		checkOutput(t, p, *task.Output)
	})

	t.Run("containers stop on SIGTERM", func(t *testing.T) {
		// The agent first (it drains), then the servers one by one.
		for _, c := range append([]string{agent}, started[:3]...) {
			stopping := time.Now()
			p.mustOutput(t, "stop", "-t", "60", c)
			code := strings.TrimSpace(string(p.mustOutput(t, "inspect", "--format", "{{.State.ExitCode}}", c)))
			t.Logf("%s stopped in %v, exit code %s", c, time.Since(stopping).Round(time.Millisecond), code)
			if code != "0" {
				t.Errorf("%s exited %s after SIGTERM, want 0", c, code)
			}
		}
	})
	t.Logf("TestImageCluster took %v", time.Since(began).Round(time.Millisecond))
}

// checkOutput probes url with the image's ffprobe: the seed's video
// example asks for an MP4 of H.264 1280 wide (720 high from 1080p).
func checkOutput(tb testing.TB, p *podman, url string) {
	tb.Helper()
	out := p.in(tb, "ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", url)
	var probe struct {
		Format struct {
			FormatName string `json:"format_name"`
		} `json:"format"`
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		tb.Fatalf("ffprobe %s: %v: %s", url, err, out)
	}
	if !strings.Contains(probe.Format.FormatName, "mp4") {
		tb.Errorf("output format %q, want mp4", probe.Format.FormatName)
	}
	var video int
	for _, s := range probe.Streams {
		if s.CodecType != "video" {
			continue
		}
		video++
		if s.CodecName != "h264" || s.Width != 1280 || s.Height != 720 {
			tb.Errorf("output video %s %dx%d, want h264 1280x720", s.CodecName, s.Width, s.Height)
		}
	}
	if video != 1 {
		tb.Errorf("output has %d video streams, want 1: %s", video, out)
	}
}

// seedBody returns the seed's request body for an example: the TASK JSON
// of its curl snippet in test/testdata/seed.
func seedBody(tb testing.TB, example string) []byte {
	tb.Helper()
	sh, err := os.ReadFile(filepath.Join("..", "testdata", "seed", example+".sh"))
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)TASK='(\{.*?\})'`).FindSubmatch(sh)
	if m == nil {
		tb.Fatalf("no TASK='{…}' in testdata/seed/%s.sh", example)
	}
	return m[1]
}

// get fails unless url answers 200.
func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freePorts returns n loopback ports free now. The containers bind them
// on the host's network, so other tests' fixed ports do not collide.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close() // held until all are chosen, so none repeats
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}
