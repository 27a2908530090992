package test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// npmTool is the path of a command from test/npm (an independent OpenAPI
// linter, a client generator, the TypeScript compiler), which make deps
// installs with npm ci.
func npmTool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("npm", "node_modules", ".bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not installed: run make deps (npm ci --prefix test/npm)", name)
	}
	return p
}

func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOpenAPIDocument reads the served OpenAPI document as a new user
// would: Redocly's linter, with its recommended rules, finds no problem
// (error or warning); openapi-typescript makes a client's types from it;
// a TypeScript program written against those types compiles in strict
// mode, creates the seed's video task and reads it back through the
// document's servers entry; and a request the API would refuse (an
// unknown kind) does not compile.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	redocly, openapiTS, tsc := npmTool(t, "redocly"), npmTool(t, "openapi-typescript"), npmTool(t, "tsc")
	dev := mustDev(t)
	mustReady(t, dev)
	resp, err := http.Get(dev.URL() + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %s %v", resp.Status, err)
	}
	var served struct {
		Servers []struct{ URL string }
	}
	if err := json.Unmarshal(doc, &served); err != nil || len(served.Servers) != 1 || served.Servers[0].URL != dev.URL() {
		t.Errorf("servers %+v (%v), want the one server it was asked of, %s", served.Servers, err, dev.URL())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	// npm's tools want a home to cache in, and nothing from the user's.
	env := append(os.Environ(), "HOME="+dir, "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")

	t.Run("lint", func(t *testing.T) {
		cmd := exec.Command(redocly, "lint", "--format=json", "--extends=recommended", "openapi.json")
		cmd.Dir, cmd.Env = dir, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr := cmd.Run()
		var report struct {
			Totals   struct{ Errors, Warnings int }
			Problems []struct {
				RuleID, Severity, Message string
				Location                  []struct{ Pointer string }
			}
		}
		if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
			t.Fatalf("redocly lint printed no report (%v, %v):\n%s\n%s", runErr, err, stdout.String(), stderr.String())
		}
		for _, p := range report.Problems {
			where := ""
			if len(p.Location) > 0 {
				where = p.Location[0].Pointer
			}
			t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
		}
		if runErr != nil || report.Totals.Errors+report.Totals.Warnings > 0 {
			t.Errorf("redocly lint: %v; %d errors, %d warnings", runErr, report.Totals.Errors, report.Totals.Warnings)
		}
	})

	t.Run("client", func(t *testing.T) {
		mustRun(t, dir, env, openapiTS, "openapi.json", "--output", "schema.d.ts")
		write := func(name, text string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("package.json", `{"type": "module"}`)
		write("client.ts", clientTS)
		write("refused.ts", refusedTS)
		tscArgs := []string{"--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
			"--lib", "es2022,dom", "--resolveJsonModule", "--outDir", "out"}
		mustRun(t, dir, env, tsc, append(tscArgs, "client.ts")...)

		out := mustRun(t, dir, append(env, "ITTYBIT_API_KEY="+testAPIKey), "node", filepath.Join("out", "client.js"))
		var got struct {
			Created, Read struct {
				ID, Kind, Status string
				Steps            []string
			}
			NotFound string
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("the generated client printed %q: %v", out, err)
		}
		if got.Created.ID == "" || got.Read.ID != got.Created.ID || got.Read.Kind != "video" ||
			strings.Join(got.Read.Steps, ",") != "probe,ingest,video,upload" || got.NotFound != "not_found" {
			t.Errorf("the generated client saw %+v", got)
		}

		cmd := exec.Command(tsc, append(tscArgs, "--noEmit", "refused.ts")...)
		cmd.Dir, cmd.Env = dir, env
		msg, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(msg), `"vidoe"`) {
			t.Errorf("a request with kind \"vidoe\" compiled against the generated types (%v):\n%s", err, msg)
		}
	})
}

// clientTS is a program written against the generated types alone: it
// creates the seed's first example at the document's server, reads the
// task back, asks for a task that does not exist and prints what it saw.
const clientTS = `import type { paths, components } from "./schema.js";
import doc from "./openapi.json" with { type: "json" };

declare const process: { env: Record<string, string | undefined> };

type CreateTask = paths["/tasks"]["post"]["requestBody"]["content"]["application/json"];
type Created = paths["/tasks"]["post"]["responses"]["201"]["content"]["application/json"];
type Task = components["schemas"]["Task"];
type ErrorBody = components["schemas"]["Error"];

const base: string = doc.servers[0].url;
const headers = { Authorization: "Bearer " + process.env.ITTYBIT_API_KEY, "Content-Type": "application/json" };

async function main(): Promise<void> {
  const body: CreateTask = {
    input: "https://example.com/upload.mov",
    kind: "video",
    options: { width: 1280, height: 720, format: "mp4", quality: "high" },
  };
  const res = await fetch(base + "/tasks", { method: "POST", headers, body: JSON.stringify(body) });
  if (res.status !== 201) throw new Error("POST /tasks: " + res.status + " " + (await res.text()));
  const created = (await res.json()) as Created;
  const read = (await (await fetch(base + "/tasks/" + created.id, { headers })).json()) as Task;
  const missing = (await (await fetch(base + "/tasks/task_none", { headers })).json()) as ErrorBody;
  console.log(JSON.stringify({
    created: { id: created.id, kind: created.kind, status: created.status, steps: created.steps.map((s) => s.kind) },
    read: { id: read.id, kind: read.kind, status: read.status, steps: read.steps.map((s) => s.kind) },
    notfound: missing.kind,
  }));
}

await main();
`

// refusedTS must not compile: the generated types know the kinds.
const refusedTS = `import type { components } from "./schema.js";

const body: components["schemas"]["CreateTaskRequest"] = { input: "https://example.com/upload.mov", kind: "vidoe" };
export default body;
`
