package configs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// systemdAnalyze is Debian's path; the test needs it (package systemd).
const systemdAnalyze = "/usr/bin/systemd-analyze"

// exposureLimit is the highest `systemd-analyze security` exposure each
// unit may have (0 is fully sandboxed, 10 not at all). Measured with
// systemd 252: server 1.1, agent 1.6 (the GPUs' device nodes and groups,
// executable memory for the drivers, /proc/driver). A change that loosens
// the sandbox noticeably fails here.
var exposureLimit = map[string]float64{
	"ittybit-server.service": 1.5,
	"ittybit-agent.service":  2.0,
}

// unit is a parsed unit file: section → key → values, in order.
type unit map[string]map[string][]string

func parseUnit(data string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is no key=value in a section", n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// get returns the last value of a key ("" when unset).
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// words returns every space-separated word of every value of a key.
func (u unit) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func requireSystemdAnalyze(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemdAnalyze); err != nil {
		t.Fatalf("%s: %v: the systemd unit tests need it: apt-get install systemd", systemdAnalyze, err)
	}
}

// verifyCopy writes the unit into a temporary folder with ExecStart's
// binary pointed at the one built from this tree and EnvironmentFile= at
// a copy of the example (verify refuses a command that does not exist),
// then runs systemd-analyze verify. It exits 0 on an unknown key or a
// value it cannot parse, saying so on stderr: any output is a failure.
func verifyCopy(t *testing.T, name, data string) (path string, err error) {
	t.Helper()
	dir := t.TempDir()
	env := filepath.Join(dir, "ittybit.env")
	if err := os.WriteFile(env, mustRead(t, "systemd/ittybit.env.example"), 0o600); err != nil {
		t.Fatal(err)
	}
	data = strings.ReplaceAll(data, "/usr/local/bin/ittybit ", ittybitBin+" ")
	data = strings.ReplaceAll(data, "EnvironmentFile=/etc/ittybit/ittybit.env", "EnvironmentFile="+env)
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(systemdAnalyze, "verify", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		return path, fmt.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
	return path, nil
}

var exposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// securityScore runs systemd-analyze security --offline=true on a unit
// file and returns its overall exposure.
func securityScore(path string) (float64, error) {
	out, err := exec.Command(systemdAnalyze, "security", "--offline=true", path).CombinedOutput()
	m := exposure.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("systemd-analyze security %s: %v\n%s", path, err, out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// checkUnit checks a unit's directives: the sandbox the README promises,
// the state folder the command uses, a stop long enough for the drain,
// and a command line the binary accepts.
func checkUnit(t *testing.T, name string, u unit) error {
	t.Helper()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(name+": "+format, a...)) }
	want := func(key, value string) {
		if !slices.Contains(u["Service"][key], value) {
			bad("want %s=%s (have %q)", key, value, u["Service"][key])
		}
	}
	want("User", "ittybit")
	want("NoNewPrivileges", "yes")
	want("ProtectSystem", "strict")
	want("ProtectHome", "yes")
	want("PrivateTmp", "yes")
	want("CapabilityBoundingSet", "")
	want("EnvironmentFile", "/etc/ittybit/ittybit.env")
	want("KillMode", "mixed")
	want("KillSignal", "SIGTERM")
	exec := strings.Fields(u.get("Service", "ExecStart"))
	if len(exec) < 2 || exec[0] != "/usr/local/bin/ittybit" {
		bad("ExecStart %q: want /usr/local/bin/ittybit server|agent …", exec)
		return errors.Join(errs...)
	}
	args := exec[1:]
	if err := checkArgs(t, args); err != nil {
		bad("%v", err)
	}
	dir := "/var/lib/" + u.get("Service", "StateDirectory")
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		bad("TimeoutStopSec %q: want a duration such as 60s", u.get("Service", "TimeoutStopSec"))
	}
	switch args[0] {
	case "server":
		if flagValue(args, "data") != dir {
			bad("--data %q: want the StateDirectory, %s", flagValue(args, "data"), dir)
		}
		want("PrivateDevices", "yes")
		// A hand-off, 5 s of requests in flight, a leave of up to 30 s.
		if stop < 45*time.Second {
			bad("TimeoutStopSec %s: want 45 s or more for the hand-off and a leave", stop)
		}
	case "agent":
		if flagValue(args, "work-dir") != dir {
			bad("--work-dir %q: want the StateDirectory, %s", flagValue(args, "work-dir"), dir)
		}
		want("PrivateDevices", "no")
		want("DevicePolicy", "closed")
		want("DeviceAllow", "char-drm rw")
		want("DeviceAllow", "char-nvidia* rw")
		for _, g := range []string{"render", "video"} {
			if !slices.Contains(u.words("Service", "SupplementaryGroups"), g) {
				bad("SupplementaryGroups must have %s (the GPUs' render nodes)", g)
			}
		}
		for _, k := range []string{"Wants", "After"} {
			if !slices.Contains(u.words("Unit", k), "modprobe@nvidia-uvm.service") {
				bad("want %s=modprobe@nvidia-uvm.service: DeviceAllow=char-nvidia* needs the modules loaded", k)
			}
		}
		drain := 30 * time.Second
		if v := flagValue(args, "drain-timeout"); v != "" {
			drain, _ = time.ParseDuration(v)
		}
		if stop < drain+10*time.Second {
			bad("TimeoutStopSec %s: want --drain-timeout (%s) and 10 s to hand steps back", stop, drain)
		}
	}
	return errors.Join(errs...)
}

// TestSystemd checks both units: systemd-analyze verify says nothing,
// the directives are there, and the sandbox's exposure stays under its
// limit (t.Log prints the score).
func TestSystemd(t *testing.T) {
	requireSystemdAnalyze(t)
	for name, limit := range exposureLimit {
		t.Run(name, func(t *testing.T) {
			data := string(mustRead(t, filepath.Join("systemd", name)))
			u, err := parseUnit(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkUnit(t, name, u); err != nil {
				t.Error(err)
			}
			path, err := verifyCopy(t, name, data)
			if err != nil {
				t.Error(err)
			}
			score, err := securityScore(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("systemd-analyze security --offline=true %s: overall exposure %.1f (limit %.1f)", name, score, limit)
			if score > limit {
				t.Errorf("%s: exposure %.1f is over %.1f: the sandbox was loosened", name, score, limit)
			}
		})
	}
}

// TestSystemdEnvExample checks the example environment file: settings
// ittybit reads, and no credential in the repository.
func TestSystemdEnvExample(t *testing.T) {
	for n, line := range strings.Split(string(mustRead(t, "systemd/ittybit.env.example")), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("line %d: %q is no KEY=value", n+1, line)
			continue
		}
		if checkEnvName(t, "server", k) != nil && checkEnvName(t, "agent", k) != nil {
			t.Errorf("line %d: $%s is no setting of `ittybit server` or `ittybit agent`", n+1, k)
		}
		if strings.Contains(k, "KEY") || strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") {
			if v != "" {
				t.Errorf("line %d: %s has a value: ship credentials empty", n+1, k)
			}
		}
	}
}

// TestSystemdBroken breaks one thing at a time in a unit: verify, the
// directive checks or the exposure limit must fail.
func TestSystemdBroken(t *testing.T) {
	requireSystemdAnalyze(t)
	sandboxOff := func(s string) string {
		start, end := strings.Index(s, "# Sandbox"), strings.Index(s, "[Install]")
		return s[:start] + s[end:]
	}
	cases := []struct {
		name, file string
		mutate     func(string) string
		want       string
	}{
		{"unknown key", "ittybit-server.service", func(s string) string {
			return strings.Replace(s, "ProtectSystem=strict", "ProtectSystem=strict\nProtectSytem=strict", 1)
		}, "Unknown key"},
		{"value systemd cannot parse", "ittybit-agent.service", func(s string) string {
			return strings.Replace(s, "NoNewPrivileges=yes", "NoNewPrivileges=mostly", 1)
		}, "Failed to parse boolean"},
		{"sandbox removed", "ittybit-server.service", sandboxOff, "exposure"},
		{"devices opened", "ittybit-server.service", func(s string) string {
			return strings.Replace(s, "PrivateDevices=yes", "PrivateDevices=no", 1)
		}, "PrivateDevices"},
		{"no NVIDIA devices", "ittybit-agent.service", func(s string) string {
			return strings.Replace(s, "DeviceAllow=char-nvidia* rw\n", "", 1)
		}, "char-nvidia"},
		{"stop before the drain ends", "ittybit-agent.service", func(s string) string {
			return strings.Replace(s, "TimeoutStopSec=150s", "TimeoutStopSec=90s", 1)
		}, "TimeoutStopSec"},
		{"unknown flag", "ittybit-agent.service", func(s string) string {
			return strings.Replace(s, "--drain-timeout 120s", "--drain 120s", 1)
		}, "unknown flag"},
		{"data outside the state folder", "ittybit-server.service", func(s string) string {
			return strings.Replace(s, "--data /var/lib/ittybit", "--data /srv/ittybit", 1)
		}, "StateDirectory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.mutate(string(mustRead(t, filepath.Join("systemd", c.file))))
			u, err := parseUnit(data)
			if err == nil {
				err = checkUnit(t, c.file, u)
			}
			path, verr := verifyCopy(t, c.file, data)
			err = errors.Join(err, verr)
			if score, serr := securityScore(path); serr != nil || score > exposureLimit[c.file] {
				err = errors.Join(err, fmt.Errorf("exposure %.1f over %.1f (%v)", score, exposureLimit[c.file], serr))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}
