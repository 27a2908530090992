package container

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// imageInspect is what the tests read of `podman image inspect`.
type imageInspect struct {
	Config struct {
		User         string
		Env          []string
		Entrypoint   []string
		Cmd          []string
		WorkingDir   string
		StopSignal   string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
	}
	Healthcheck *struct {
		Test []string
	}
}

// TestImageConfig checks what the Containerfile promises: a non-root user
// in the GPU groups, the NVIDIA toolkit told to mount the video libraries
// (and none baked in), Debian's ffmpeg with the hardware encoders, a stop
// signal the server drains on, and a health check.
func TestImageConfig(t *testing.T) {
	p := mustPodman(t)

	t.Run("config", func(t *testing.T) {
		var got []imageInspect
		if err := json.Unmarshal(p.mustOutput(t, "image", "inspect", p.image), &got); err != nil || len(got) != 1 {
			t.Fatalf("podman image inspect: %v (%d images)", err, len(got))
		}
		c := got[0].Config
		env := map[string]string{}
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if caps := strings.Split(env["NVIDIA_DRIVER_CAPABILITIES"], ","); !slices.Contains(caps, "video") || !slices.Contains(caps, "compute") {
			t.Errorf("NVIDIA_DRIVER_CAPABILITIES=%q, want compute and video (NVENC needs video)", env["NVIDIA_DRIVER_CAPABILITIES"])
		}
		if env["NVIDIA_VISIBLE_DEVICES"] != "all" {
			t.Errorf("NVIDIA_VISIBLE_DEVICES=%q, want all", env["NVIDIA_VISIBLE_DEVICES"])
		}
		for _, f := range []struct{ what, got, want string }{
			{"user", c.User, "ittybit"},
			{"stop signal", c.StopSignal, "SIGTERM"},
			{"working dir", c.WorkingDir, "/data"},
		} {
			if f.got != f.want {
				t.Errorf("%s %q, want %q", f.what, f.got, f.want)
			}
		}
		if diff := cmp.Diff([]string{"ittybit"}, c.Entrypoint); diff != "" {
			t.Errorf("entrypoint (-want +got):\n%s", diff)
		}
		if len(c.Cmd) == 0 || c.Cmd[0] != "server" {
			t.Errorf("cmd %q, want server …", c.Cmd)
		}
		for _, port := range []string{"8080/tcp", "9090/tcp"} {
			if _, ok := c.ExposedPorts[port]; !ok {
				t.Errorf("port %s not exposed: %v", port, c.ExposedPorts)
			}
		}
		if _, ok := c.Volumes["/data"]; !ok {
			t.Errorf("/data is not a volume: %v", c.Volumes)
		}
		hc := got[0].Healthcheck
		if hc == nil || len(hc.Test) < 2 || !strings.Contains(strings.Join(hc.Test, " "), "HEALTHCHECK_URL") {
			t.Errorf("health check %+v, want one on $HEALTHCHECK_URL (built with --format docker?)", hc)
		}
		if !strings.HasSuffix(env["HEALTHCHECK_URL"], "/healthz") {
			t.Errorf("HEALTHCHECK_URL=%q, want the server's /healthz", env["HEALTHCHECK_URL"])
		}
	})

	t.Run("user ittybit is in video and render", func(t *testing.T) {
		id := string(p.in(t, "id"))
		for _, want := range []string{"uid=10001(ittybit)", "(video)", "(render)"} {
			if !strings.Contains(id, want) {
				t.Errorf("id: %s: no %s", strings.TrimSpace(id), want)
			}
		}
	})

	t.Run("ffmpeg has the hardware encoders", func(t *testing.T) {
		out := string(p.in(t, "ffmpeg", "-hide_banner", "-encoders"))
		for _, enc := range []string{"h264_nvenc", "hevc_nvenc", "h264_vaapi", "h264_qsv", "libx264"} {
			if !strings.Contains(out, " "+enc+" ") {
				t.Errorf("ffmpeg -encoders does not list %s", enc)
			}
		}
	})

	t.Run("no NVIDIA driver library inside", func(t *testing.T) {
		// The toolkit mounts the host driver's; one baked in would not
		// match the host's kernel module.
		out := p.in(t, "find", "/usr", "/opt", "-xdev", "(", "-name", "libnvidia-*", "-o", "-name", "libcuda.so*", ")", "-print")
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Errorf("NVIDIA libraries in the image:\n%s", s)
		}
	})

	t.Run("ittybit runs", func(t *testing.T) {
		out := string(p.mustOutput(t, p.run("--rm", "--no-healthcheck", p.image, "version")...))
		if !strings.HasPrefix(out, "ittybit ") || !strings.Contains(out, "ffmpeg version") {
			t.Errorf("ittybit version:\n%s", out)
		}
	})
}
