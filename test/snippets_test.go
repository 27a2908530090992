package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seedURL is the endpoint the seed's snippets call; the test points them
// at `ittybit dev` instead.
const seedURL = "https://api.ittybit.com/tasks"

// snippetRunner runs one language's snippets: the tool, how to check it is
// usable, the prologue and epilogue around the seed's text (which print
// the status and body as {"status": …, "data": …}). The tool runs the
// snippet file.
type snippetRunner struct {
	lang, ext, tool string
	check           []string // a command that must succeed, besides LookPath
	install         string   // what `make deps` installs for it
	prologue        string
	epilogue        string
}

var snippetRunners = []snippetRunner{
	{
		lang: "curl", ext: ".sh", tool: "bash", install: "curl",
		check: []string{"curl", "--version"},
		// curl prints the body; the status goes on a line of its own after
		// it, added by wrapping the command rather than editing the snippet.
		prologue: "set -euo pipefail\ncurl() { command curl --silent --show-error --write-out '\\n%{http_code}\\n' \"$@\"; }\n",
	},
	{
		lang: "python", ext: ".py", tool: "python3", install: "python3 python3-requests",
		check: []string{"python3", "-c", "import requests"},
		// The seed's Python reads an api_key it never defines: the key is
		// the one thing supplied besides the URL.
		prologue: "import json, os\napi_key = os.environ[\"ITTYBIT_API_KEY\"]\n",
		epilogue: "\nprint(json.dumps({\"status\": res.status_code, \"data\": data}))\n",
	},
	{
		lang: "javascript", ext: ".mjs", tool: "node", install: "nodejs (18 or later, for fetch)",
		check:    []string{"node", "-e", "if (typeof fetch !== 'function') { console.error('node ' + process.version + ' has no global fetch; Node 18 or later is needed'); process.exit(1) }"},
		epilogue: "\nconsole.log(JSON.stringify({ status: res.status, data }));\n",
	},
}

// TestSeedSnippets runs the seed's curl, Python requests and JavaScript
// fetch snippets, verbatim but for the URL (and Python's undefined
// api_key), against `ittybit dev`: each must get 201 and a task. The tools
// are not optional: `make deps` installs them, and a missing one fails the
// test.
func TestSeedSnippets(t *testing.T) {
	t.Parallel()
	for _, r := range snippetRunners {
		mustTool(t, r)
	}
	dev := mustDev(t)
	mustReady(t, dev)
	dir := t.TempDir()
	for _, r := range snippetRunners {
		t.Run(r.lang, func(t *testing.T) {
			for _, name := range seedNames {
				t.Run(name, func(t *testing.T) {
					seed := string(mustRead(t, filepath.Join("testdata", "seed", name+r.ext)))
					if strings.Count(seed, seedURL) != 1 {
						t.Fatalf("testdata/seed/%s%s calls %s %d times, want once", name, r.ext, seedURL, strings.Count(seed, seedURL))
					}
					text := r.prologue + strings.Replace(seed, seedURL, dev.URL()+"/tasks", 1) + r.epilogue
					file := filepath.Join(dir, name+r.ext)
					if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
					sent := time.Now()
					status, body := runSnippet(t, r, file)
					if status != http.StatusCreated {
						t.Fatalf("%s %s: status %d, want 201: %s", r.lang, name, status, body)
					}
					checkSeed201(t, body, seedBody(t, name), sent, time.Now())
				})
			}
		})
	}
}

// mustTool fails the test when a snippet's tool is missing or unusable.
func mustTool(tb testing.TB, r snippetRunner) {
	tb.Helper()
	for _, tool := range []string{r.tool, r.check[0]} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Fatalf("%s is not installed, so the seed's %s snippets cannot run: run `make deps` (apt-get install %s)", tool, r.lang, r.install)
		}
	}
	out, err := exec.Command(r.check[0], r.check[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s cannot run the seed's %s snippets (%v: %s): run `make deps` (apt-get install %s)", r.check[0], r.lang, err, bytes.TrimSpace(out), r.install)
	}
}

// runSnippet runs a snippet file with ITTYBIT_API_KEY set and returns the
// status and body it printed.
func runSnippet(tb testing.TB, r snippetRunner, file string) (int, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.tool, file)
	cmd.Env = append(os.Environ(), "ITTYBIT_API_KEY="+testAPIKey)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", r.tool, filepath.Base(file), err, stdout.Bytes(), stderr.Bytes())
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if r.lang == "curl" {
		m := regexp.MustCompile(`(?s)^(.*)\n(\d{3})$`).FindSubmatch(out)
		if m == nil {
			tb.Fatalf("curl printed no status line: %s", out)
		}
		status, _ := strconv.Atoi(string(m[2]))
		return status, m[1]
	}
	var res struct {
		Status int             `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatalf("%s printed %q: %v", r.tool, out, err)
	}
	return res.Status, res.Data
}
