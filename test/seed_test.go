package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seedNames are the seed's five request examples, in its order; each has a
// curl (.sh), Python (.py) and JavaScript (.mjs) snippet in testdata/seed.
var seedNames = []string{"video", "audio", "image", "adaptive_video", "output_s3"}

// seedBody returns an example's request body: the curl snippet's TASK JSON.
func seedBody(tb testing.TB, name string) []byte {
	tb.Helper()
	sh := mustRead(tb, filepath.Join("testdata", "seed", name+".sh"))
	m := regexp.MustCompile(`(?s)TASK='(\{.*?\})'`).FindSubmatch(sh)
	if m == nil {
		tb.Fatalf("no TASK='{…}' in testdata/seed/%s.sh", name)
	}
	return m[1]
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func mustJSON(tb testing.TB, data []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("not JSON: %v: %s", err, data)
	}
	return v
}

// Fields the contract adds to the seed's task object ("fields may be added,
// never removed or renamed"), by path.
var addedFields = map[string]bool{"$.steps[].node": true, "$.steps[].attempt": true, "$.steps[].parts": true}

// checkSeed201 checks a 201 body against the seed's "Response 201": the same
// fields (besides the contract's additions) with the same JSON types,
// recursively, and the values a new task must have for the request body
// req, sent at sent and answered by received.
func checkSeed201(tb testing.TB, got, req []byte, sent, received time.Time) {
	tb.Helper()
	seed := mustJSON(tb, mustRead(tb, filepath.Join("testdata", "seed_task_201.json"))).(map[string]any)
	task, ok := mustJSON(tb, got).(map[string]any)
	if !ok {
		tb.Fatalf("201 body is not an object: %s", got)
	}
	request := mustJSON(tb, req).(map[string]any)

	var problems []string
	// options and output depend on the request: compared below.
	sameShape("$", seed, task, map[string]bool{"$.options": true, "$.output": true}, &problems)

	want := map[string]any{
		"object": "task", "kind": request["kind"], "input": request["input"], "status": "queued",
		"error": nil, "metadata": map[string]any{}, "started_at": nil, "finished_at": nil,
		"options": orEmpty(request["options"]), "output": request["output"],
	}
	for k, v := range want {
		if diff := cmp.Diff(v, task[k]); diff != "" {
			problems = append(problems, fmt.Sprintf("$.%s (-want +got):\n%s", k, diff))
		}
	}
	if id, _ := task["id"].(string); !strings.HasPrefix(id, "task_") {
		problems = append(problems, fmt.Sprintf("$.id %q does not start with task_", id))
	}
	created := epochMS("$.created_at", task["created_at"], sent, received, &problems)
	if u := task["updated_at"]; u != task["created_at"] {
		problems = append(problems, fmt.Sprintf("$.updated_at %v differs from created_at %v", u, task["created_at"]))
	}
	steps, _ := task["steps"].([]any)
	wantKinds := []any{"probe", "ingest", request["kind"], "upload"}
	var kinds []any
	for i, s := range steps {
		st, _ := s.(map[string]any)
		p := fmt.Sprintf("$.steps[%d]", i)
		kinds = append(kinds, st["kind"])
		for k, v := range map[string]any{
			"object": "step", "status": "waiting", "input": nil, "output": nil, "options": map[string]any{},
			"progress": nil, "error": nil, "started_at": nil, "finished_at": nil, "node": nil,
		} {
			if diff := cmp.Diff(v, st[k]); diff != "" {
				problems = append(problems, fmt.Sprintf("%s.%s (-want +got):\n%s", p, k, diff))
			}
		}
		if id, _ := st["id"].(string); !strings.HasPrefix(id, "step_") {
			problems = append(problems, fmt.Sprintf("%s.id %q does not start with step_", p, id))
		}
		if c := epochMS(p+".created_at", st["created_at"], sent, received, &problems); c != created {
			problems = append(problems, fmt.Sprintf("%s.created_at %d differs from the task's %d", p, c, created))
		}
		if st["updated_at"] != st["created_at"] {
			problems = append(problems, fmt.Sprintf("%s.updated_at differs from its created_at", p))
		}
		if n, ok := st["attempt"].(json.Number); !ok || strings.ContainsAny(n.String(), ".eE-") {
			problems = append(problems, fmt.Sprintf("%s.attempt %v is not a whole number", p, st["attempt"]))
		}
	}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		problems = append(problems, "step kinds (-want +got):\n"+diff)
	}
	if len(problems) > 0 {
		tb.Errorf("201 for %s differs from the seed's Response 201:\n%s\nbody: %s", req, strings.Join(problems, "\n"), got)
	}
}

func orEmpty(v any) any {
	if v == nil {
		return map[string]any{}
	}
	return v
}

// epochMS checks that v is a whole number of milliseconds between sent and
// received (one second of slack each way), and returns it.
func epochMS(path string, v any, sent, received time.Time, problems *[]string) int64 {
	n, ok := v.(json.Number)
	ms, err := n.Int64()
	if !ok || err != nil {
		*problems = append(*problems, fmt.Sprintf("%s %v is not a whole number of epoch milliseconds", path, v))
		return 0
	}
	if ms < sent.Add(-time.Second).UnixMilli() || ms > received.Add(time.Second).UnixMilli() {
		*problems = append(*problems, fmt.Sprintf("%s %d (%s) is not the time of the request (%s)", path, ms, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), sent.UTC().Format(time.RFC3339Nano)))
	}
	return ms
}

// sameShape compares the JSON types of got with those of seed,
// recursively: objects must have the seed's keys (plus addedFields), arrays
// the seed's length. Paths in skip are not compared.
func sameShape(path string, seed, got any, skip map[string]bool, problems *[]string) {
	norm := regexp.MustCompile(`\[\d+\]`).ReplaceAllString(path, "[]")
	if skip[norm] {
		return
	}
	if jsonType(seed) != jsonType(got) {
		*problems = append(*problems, fmt.Sprintf("%s is %s (%v), the seed's is %s (%v)", path, jsonType(got), got, jsonType(seed), seed))
		return
	}
	switch s := seed.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for _, k := range sortedKeys(s) {
			if _, ok := g[k]; !ok {
				*problems = append(*problems, fmt.Sprintf("%s.%s is missing", path, k))
				continue
			}
			sameShape(path+"."+k, s[k], g[k], skip, problems)
		}
		for _, k := range sortedKeys(g) {
			if _, ok := s[k]; !ok && !addedFields[norm+"."+k] {
				*problems = append(*problems, fmt.Sprintf("%s.%s is not in the seed nor a documented addition", path, k))
			}
		}
	case []any:
		g := got.([]any)
		if len(g) != len(s) {
			*problems = append(*problems, fmt.Sprintf("%s has %d elements, the seed's %d", path, len(g), len(s)))
			return
		}
		for i := range s {
			sameShape(fmt.Sprintf("%s[%d]", path, i), s[i], g[i], skip, problems)
		}
	}
}

func jsonType(v any) string {
	switch n := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if strings.ContainsAny(n.String(), ".eE") {
			return "number"
		}
		return "integer"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
