package configs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ittybit-oss/ittybit/internal/discover"
)

// image is the published image every deployment file names.
const image = "ghcr.io/ittybit-oss/ittybit:latest"

// ittybitBin is cmd/ittybit built from this tree by TestMain.
var ittybitBin string

// TestMain builds cmd/ittybit into a temporary folder, runs the tests and
// removes it: the deployment files' command lines are checked against the
// flags it really has.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ittybit-configs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ittybitBin = filepath.Join(dir, "ittybit")
	build := exec.Command("go", "build", "-o", ittybitBin, "./cmd/ittybit")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build ./cmd/ittybit:", err)
		return 1
	}
	return m.Run()
}

// extraEnv are the ITTYBIT_ variables that stand for no flag, and the
// commands that read them.
var extraEnv = map[string][]string{
	"ITTYBIT_API_KEY":       {"server"},
	"ITTYBIT_SEAL_KEY":      {"server"},
	"ITTYBIT_NODE_TOKEN":    {"server", "agent"},
	"ITTYBIT_S3_PATH_STYLE": {"server", "agent"},
}

var (
	flagsOnce sync.Once
	flags     map[string][]string // command → its flag names
	flagsErr  error
)

// commandFlags returns the long flags of `ittybit COMMAND`, read from
// its --help.
func commandFlags(t *testing.T, command string) []string {
	t.Helper()
	flagsOnce.Do(func() {
		flags = map[string][]string{}
		re := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)
		for _, c := range []string{"server", "agent"} {
			out, err := exec.Command(ittybitBin, c, "--help").CombinedOutput()
			if err != nil {
				flagsErr = fmt.Errorf("ittybit %s --help: %v\n%s", c, err, out)
				return
			}
			for _, m := range re.FindAllStringSubmatch(string(out), -1) {
				flags[c] = append(flags[c], m[1])
			}
		}
	})
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	if len(flags[command]) < 10 {
		t.Fatalf("ittybit %s --help lists only the flags %v", command, flags[command])
	}
	return flags[command]
}

// envName is the variable that stands for a flag (cmd/ittybit/env.go).
func envName(flag string) string {
	return "ITTYBIT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkEnvName reports whether ittybit COMMAND reads the variable name:
// an ITTYBIT_ variable that stands for none of its flags is a typo that
// would be ignored without a word.
func checkEnvName(t *testing.T, command, name string) error {
	t.Helper()
	if !strings.HasPrefix(name, "ITTYBIT_") {
		return nil
	}
	if slices.Contains(extraEnv[name], command) {
		return nil
	}
	for _, f := range commandFlags(t, command) {
		if envName(f) == name && f != "help" {
			return nil
		}
	}
	return fmt.Errorf("$%s is no setting of `ittybit %s`", name, command)
}

// checkArgs runs `ittybit ARGS --help`: the flags parse (names, and values
// of their types) or it fails; the subcommand is args[0]. Every --join
// and --server value must be an address the servers and agents accept.
func checkArgs(t *testing.T, args []string) error {
	t.Helper()
	if len(args) == 0 || (args[0] != "server" && args[0] != "agent") {
		return fmt.Errorf("command line %q: want `server …` or `agent …`", args)
	}
	out, err := exec.Command(ittybitBin, append(slices.Clone(args), "--help")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ittybit %s: %v: %s", strings.Join(args, " "), err, firstLine(out))
	}
	for _, v := range flagValues(args, "join", "server") {
		if _, err := discover.Parse(v); err != nil {
			return err
		}
	}
	return nil
}

// flagValues returns the values of the named flags in args, in the forms
// --name=value and --name value.
func flagValues(args []string, names ...string) []string {
	var out []string
	for i, a := range args {
		for _, n := range names {
			switch {
			case strings.HasPrefix(a, "--"+n+"="):
				out = append(out, strings.TrimPrefix(a, "--"+n+"="))
			case a == "--"+n && i+1 < len(args):
				out = append(out, args[i+1])
			}
		}
	}
	return out
}

// flagValue returns the last value of a flag in args, "" when absent.
func flagValue(args []string, name string) string {
	vs := flagValues(args, name)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// mustRead returns a file's contents.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
