package configs

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Nomad jobs: each job name has a docker and an exec variant.
var nomadJobs = []string{
	"ittybit-server.nomad.hcl",
	"ittybit-server-exec.nomad.hcl",
	"ittybit-agent.nomad.hcl",
	"ittybit-agent-exec.nomad.hcl",
}

// Consul service names: the servers register ittybit-server-peers
// (checked on /healthz: every running server) for each other and
// ittybit-server (/readyz: ready servers) for clients and agents.
const (
	peersService  = "ittybit-server-peers"
	clientService = "ittybit-server"
	// maxKillTimeout is a Nomad client's default max_kill_timeout: a
	// longer kill_timeout is cut to it.
	maxKillTimeout = 30 * time.Second
)

// TestNomad parses every job against the job specification's schema and
// checks what makes it work: servers spread over hosts, as many as
// --bootstrap-expect, found through the service every running server is
// in; readiness on /readyz and restarts only on /healthz; agents as a
// system job with the NVIDIA device and the video capability; drains
// within kill_timeout; the image of the Kubernetes manifests; flags and
// variables the binary knows.
func TestNomad(t *testing.T) {
	for _, name := range nomadJobs {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("nomad", name)
			job, err := parseJob(path, mustRead(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if err := checkJob(t, job); err != nil {
				t.Error(err)
			}
		})
	}
}

// checkJob runs the checks of one job and reports every problem.
func checkJob(t *testing.T, job *block) error {
	t.Helper()
	var errs []error
	name := ""
	if len(job.labels) == 1 {
		name = job.labels[0]
	}
	switch name {
	case "ittybit-server":
		errs = append(errs, checkServerJob(job))
	case "ittybit-agent":
		errs = append(errs, checkAgentJob(job))
	default:
		errs = append(errs, fmt.Errorf("job %q: want ittybit-server or ittybit-agent (the Nomad Variables paths follow the job name)", name))
	}
	for _, g := range job.all("group") {
		ports := map[string]bool{}
		for _, p := range g.one("network").all("port") {
			ports[p.labels[0]] = true
		}
		for _, task := range g.all("task") {
			errs = append(errs, checkTask(t, name, g, task, ports))
		}
	}
	return errors.Join(errs...)
}

var portVar = regexp.MustCompile(`\$\{NOMAD_(?:ADDR|IP|PORT|HOST_PORT|HOST_IP|HOST_ADDR)_([a-z0-9_]+)\}`)

// checkTask checks the command line, the variables, the image and the
// stop of one task.
func checkTask(t *testing.T, job string, g, task *block, ports map[string]bool) error {
	t.Helper()
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("group %s, task %s: "+format, append([]any{g.labels[0], task.labels[0]}, a...)...))
	}
	config := task.one("config")
	args := config.strs("args")
	switch task.str("driver") {
	case "docker":
		if config.str("image") != image {
			bad("image %q, want %q (the image of the Kubernetes manifests)", config.str("image"), image)
		}
		if config.str("network_mode") != "host" {
			bad("network_mode %q: want host (Consul's DNS is on the host's 127.0.0.1:8600)", config.str("network_mode"))
		}
		if off, _ := config.one("healthchecks").attrs["disable"].(bool); !off {
			bad("the image's HEALTHCHECK asks 127.0.0.1:8080, where neither a server on its host address nor an agent listens: disable it")
		}
		if !slices.Contains(config.strs("cap_drop"), "all") || !slices.Contains(config.strs("security_opt"), "no-new-privileges") {
			bad(`want cap_drop = ["all"] and security_opt = ["no-new-privileges"]: ittybit needs no capability`)
		}
	case "exec":
		if config.str("command") != "/usr/local/bin/ittybit" {
			bad("command %q: want /usr/local/bin/ittybit", config.str("command"))
		}
	default:
		bad("driver %q: want docker or exec", task.str("driver"))
	}
	for _, a := range args {
		for _, m := range portVar.FindAllStringSubmatch(a, -1) {
			if !ports[m[1]] {
				bad("%s names the port %q, which the group's network does not have", a, m[1])
			}
		}
	}
	sample := make([]string, len(args))
	for i, a := range args {
		sample[i] = nomadSample(a)
	}
	if err := checkArgs(t, sample); err != nil {
		bad("%v", err)
	}
	command := map[string]string{"ittybit-server": "server", "ittybit-agent": "agent"}[job]
	if len(args) > 0 && args[0] != command {
		bad("args start with %q, want %q", args[0], command)
	}
	env := map[string]string{}
	for k, v := range task.one("env").attrs {
		env[k], _ = v.(string)
	}
	for _, tpl := range task.all("template") {
		if b, _ := tpl.attrs["env"].(bool); !b {
			continue
		}
		for _, line := range strings.Split(tpl.str("data"), "\n") {
			if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "{{") {
				env[k] = "(template)"
			}
		}
		if !strings.Contains(tpl.str("data"), `nomadVar "nomad/jobs/`+job+`"`) {
			bad("the template must read the job's own Nomad Variables, nomad/jobs/%s", job)
		}
	}
	for k := range env {
		if err := checkEnvName(t, command, k); err != nil {
			bad("%v", err)
		}
	}
	for _, k := range []string{"ITTYBIT_NODE_TOKEN", "ITTYBIT_STORAGE"} {
		if env[k] == "" {
			bad("no %s", k)
		}
	}
	if task.str("kill_signal") != "SIGTERM" {
		bad("kill_signal %q: want SIGTERM (Nomad's default is SIGINT)", task.str("kill_signal"))
	}
	kill, err := time.ParseDuration(task.str("kill_timeout"))
	if err != nil {
		bad("kill_timeout %q: %v", task.str("kill_timeout"), err)
	}
	if kill > maxKillTimeout {
		bad("kill_timeout %s: a Nomad client cuts it to its max_kill_timeout, %s unless configured", kill, maxKillTimeout)
	}
	if command == "agent" {
		drain := 30 * time.Second
		if v := flagValue(args, "drain-timeout"); v != "" {
			drain, _ = time.ParseDuration(v)
		}
		if kill <= drain {
			bad("kill_timeout %s: want more than --drain-timeout (%s)", kill, drain)
		}
	}
	return errors.Join(errs...)
}

// nomadSample replaces ${…} by sample values, for the flags to parse.
func nomadSample(s string) string {
	return regexp.MustCompile(`\$\{[^}]*\}`).ReplaceAllStringFunc(s, func(v string) string {
		switch {
		case strings.HasPrefix(v, "${NOMAD_ADDR_"):
			return "10.0.0.1:8080"
		case strings.HasPrefix(v, "${NOMAD_IP_"):
			return "10.0.0.1"
		case strings.HasPrefix(v, "${NOMAD_PORT_"), v == "${NOMAD_ALLOC_INDEX}":
			return "0"
		}
		return "sample"
	})
}

// distinctHosts reports whether a job or group constraint keeps its
// allocations on distinct hosts.
func distinctHosts(bs ...*block) bool {
	for _, b := range bs {
		for _, c := range b.all("constraint") {
			if c.str("operator") == "distinct_hosts" && c.str("value") == "true" {
				return true
			}
		}
	}
	return false
}

func checkServerJob(job *block) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("job ittybit-server: "+format, a...)) }
	if job.str("type") != "service" {
		bad("type %q, want service", job.str("type"))
	}
	groups := job.all("group")
	if len(groups) != 1 || len(groups[0].all("task")) != 1 {
		bad("want one group of one task")
		return errors.Join(errs...)
	}
	g := groups[0]
	task := g.all("task")[0]
	args := task.one("config").strs("args")
	if g.num("count") != 3 {
		bad("count %d, want 3", g.num("count"))
	}
	if flagValue(args, "bootstrap-expect") != fmt.Sprint(g.num("count")) {
		bad("--bootstrap-expect %q: want the count, %d", flagValue(args, "bootstrap-expect"), g.num("count"))
	}
	if !distinctHosts(job, g) {
		bad("want the constraint distinct_hosts = true: one server per host")
	}
	if job.one("update").num("max_parallel") != 1 {
		bad("update: want max_parallel = 1, one server at a time")
	}
	if !strings.Contains(flagValue(args, "node-id"), "${NOMAD_ALLOC_INDEX}") {
		bad("--node-id %q: want one built on ${NOMAD_ALLOC_INDEX}, stable across moves", flagValue(args, "node-id"))
	}
	checks := map[string]*block{} // service name → its check
	for _, s := range g.all("service") {
		checks[s.str("name")] = s.one("check")
	}
	ready, peers := checks[clientService], checks[peersService]
	if ready == nil || ready.str("type") != "http" || ready.str("path") != "/readyz" {
		bad("service %s: want an http check on /readyz (ready servers only)", clientService)
	} else if len(ready.all("check_restart")) > 0 {
		bad("service %s: no check_restart on /readyz: a lost quorum would restart every server", clientService)
	}
	if peers == nil || peers.str("type") != "http" || peers.str("path") != "/healthz" || len(peers.all("check_restart")) == 0 {
		bad("service %s: want an http check on /healthz with check_restart (liveness, whatever the leader)", peersService)
	}
	joins := flagValues(args, "join")
	if !slices.Contains(joins, "dns+srv://"+peersService+".service.consul") {
		bad("--join %q: want dns+srv://%s.service.consul (every running server, ready or not)", joins, peersService)
	}
	data := ""
	for _, m := range task.all("volume_mount") {
		for _, v := range g.all("volume") {
			if v.labels[0] == m.str("volume") && v.str("type") == "host" {
				data = m.str("destination")
			}
		}
	}
	if data == "" || flagValue(args, "data") != data {
		bad("--data %q is not where a host volume is mounted (%q)", flagValue(args, "data"), data)
	}
	if task.str("shutdown_delay") == "" {
		bad("want a shutdown_delay: out of Consul before SIGTERM")
	}
	return errors.Join(errs...)
}

func checkAgentJob(job *block) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("job ittybit-agent: "+format, a...)) }
	if job.str("type") != "system" {
		bad("type %q, want system (an agent on every qualifying client)", job.str("type"))
	}
	if len(job.all("group")) == 0 {
		bad("no group")
	}
	for _, g := range job.all("group") {
		kind := ""
		for _, c := range g.all("constraint") {
			if c.str("attribute") == "${meta.ittybit_agent}" {
				kind = c.str("value")
			}
		}
		if kind != g.labels[0] {
			bad("group %s: want the opt-in constraint ${meta.ittybit_agent} = %q", g.labels[0], g.labels[0])
		}
		for _, task := range g.all("task") {
			config, res := task.one("config"), task.one("resources")
			args := config.strs("args")
			if !slices.Contains(flagValues(args, "server"), "dns+srv://"+clientService+".service.consul") {
				bad("group %s: --server %q: want dns+srv://%s.service.consul (ready servers)", g.labels[0], flagValues(args, "server"), clientService)
			}
			env := task.one("env")
			var gpu *block
			for _, d := range res.all("device") {
				if d.labels[0] == "nvidia/gpu" {
					gpu = d
				}
			}
			switch kind {
			case "nvidia":
				if task.str("driver") != "docker" {
					bad("group nvidia: the NVIDIA runtime needs the docker driver")
				}
				if gpu == nil || gpu.num("count") < 1 {
					bad("group nvidia: want device \"nvidia/gpu\" with a count in resources")
				}
				caps := strings.Split(env.str("NVIDIA_DRIVER_CAPABILITIES"), ",")
				for _, want := range []string{"compute", "video", "utility"} {
					if !slices.Contains(caps, want) {
						bad("group nvidia: NVIDIA_DRIVER_CAPABILITIES must name %s (video: NVENC/NVDEC)", want)
					}
				}
			case "intel":
				devs, _ := config.attrs["devices"].([]any)
				dri := false
				for _, d := range devs {
					if m, _ := d.(map[string]any); m["host_path"] == "/dev/dri" {
						dri = true
					}
				}
				if !dri || len(config.strs("group_add")) == 0 {
					bad("group intel: want devices with /dev/dri and group_add with the host's render group")
				}
			case "cpu":
			default:
				bad("group %s: want nvidia, intel or cpu", g.labels[0])
			}
			if kind != "nvidia" && gpu != nil {
				bad("group %s asks for an NVIDIA GPU", g.labels[0])
			}
			if kind != "nvidia" && task.str("driver") == "docker" && env.str("NVIDIA_VISIBLE_DEVICES") != "void" {
				bad("group %s: NVIDIA_VISIBLE_DEVICES must be void: the image lets the NVIDIA runtime hand it every GPU", g.labels[0])
			}
		}
	}
	return errors.Join(errs...)
}

// TestNomadBroken breaks one thing at a time in a job: parsing or the
// checks must fail.
func TestNomadBroken(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"unknown attribute", "ittybit-server.nomad.hcl", `driver = "docker"`, `drivr = "docker"`, `Unsupported argument`},
		{"unknown block", "ittybit-agent.nomad.hcl", `device "nvidia/gpu" {`, `devices "nvidia/gpu" {`, `Unsupported block type`},
		{"unknown docker option", "ittybit-agent.nomad.hcl", `network_mode = "host"`, `network = "host"`, `Unsupported argument`},
		{"unknown runtime variable", "ittybit-server.nomad.hcl", `${NOMAD_ALLOC_INDEX}`, `${NOMAD_ALLOC_NUMBER}`, `not a Nomad runtime variable`},
		{"port the group lacks", "ittybit-server.nomad.hcl", `"--raft=${NOMAD_ADDR_raft}"`, `"--raft=${NOMAD_ADDR_rpc}"`, `port "rpc"`},
		{"count and bootstrap-expect differ", "ittybit-server.nomad.hcl", `count = 3`, `count = 5`, `--bootstrap-expect`},
		{"servers may share a host", "ittybit-server-exec.nomad.hcl", `operator = "distinct_hosts"`, `operator = "distinct_property"`, `distinct_hosts`},
		{"readiness on healthz", "ittybit-server.nomad.hcl", `path     = "/readyz"`, `path     = "/healthz"`, `/readyz`},
		{"join through ready servers", "ittybit-server.nomad.hcl", `dns+srv://ittybit-server-peers.service.consul`, `dns+srv://ittybit-server.service.consul`, `--join`},
		{"agent as a service job", "ittybit-agent-exec.nomad.hcl", `type        = "system"`, `type        = "service"`, `want system`},
		{"no GPU", "ittybit-agent.nomad.hcl", `device "nvidia/gpu" {`, `device "intel/gpu" {`, `nvidia/gpu`},
		{"no video capability", "ittybit-agent.nomad.hcl", `"compute,video,utility"`, `"compute,utility"`, `video`},
		{"unknown flag", "ittybit-agent.nomad.hcl", `"--slots=2",`, `"--slot=2",`, `unknown flag: --slot`},
		{"unknown variable", "ittybit-server-exec.nomad.hcl", `ITTYBIT_LOG_LEVEL = "info"`, `ITTYBIT_LOGLEVEL = "info"`, `ITTYBIT_LOGLEVEL`},
		{"drain longer than kill_timeout", "ittybit-agent-exec.nomad.hcl", `"--drain-timeout=25s"`, `"--drain-timeout=2m"`, `kill_timeout`},
		{"kill_timeout over the client's cap", "ittybit-server.nomad.hcl", `kill_timeout   = "30s"`, `kill_timeout   = "90s"`, `max_kill_timeout`},
		{"another image", "ittybit-server.nomad.hcl", `image        = "ghcr.io/ittybit-oss/ittybit:latest"`, `image        = "ittybit:latest"`, `image`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := string(mustRead(t, filepath.Join("nomad", c.file)))
			if !strings.Contains(src, c.old) {
				t.Fatalf("%s has no %q", c.file, c.old)
			}
			src = strings.Replace(src, c.old, c.new, 1)
			job, err := parseJob(c.file, []byte(src))
			if err == nil {
				err = checkJob(t, job)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}
