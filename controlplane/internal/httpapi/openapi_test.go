package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// mustOpenAPI fetches /openapi.json (no credentials needed) and decodes it.
func mustOpenAPI(tb testing.TB, a *API) map[string]any {
	tb.Helper()
	w := serve(a, "GET", "/openapi.json", "", "")
	if w.Code != 200 {
		tb.Fatalf("GET /openapi.json: %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		tb.Fatalf("/openapi.json is not JSON: %v", err)
	}
	return doc
}

func TestOpenAPI(t *testing.T) {
	a := mustAPI(t, nil)
	doc := mustOpenAPI(t, a)

	t.Run("is OpenAPI 3.1.0", func(t *testing.T) {
		if doc["openapi"] != "3.1.0" {
			t.Errorf("openapi %v, want 3.1.0", doc["openapi"])
		}
		info, _ := doc["info"].(map[string]any)
		if info["title"] == nil || info["version"] == nil {
			t.Errorf("info %v lacks title or version", info)
		}
	})

	t.Run("servers is the server asked", func(t *testing.T) {
		// httptest's requests are for example.com.
		if got, _ := json.Marshal(doc["servers"]); string(got) != `[{"description":"the ittybit server that served this document","url":"http://example.com"}]` {
			t.Errorf("servers %s", got)
		}
		r := httptest.NewRequest("GET", "/openapi.json", nil)
		r.Host = "media.internal:8443"
		r.Header.Set("X-Forwarded-Proto", "https")
		if got := baseURL(r); got != "https://media.internal:8443" {
			t.Errorf("behind a TLS proxy: %s", got)
		}
	})

	t.Run("every $ref resolves", func(t *testing.T) {
		var refs []string
		collectRefs(doc, &refs)
		if len(refs) == 0 {
			t.Fatal("no $ref in the document")
		}
		for _, ref := range refs {
			if _, err := resolve(doc, ref); err != "" {
				t.Errorf("$ref %q: %s", ref, err)
			}
		}
	})

	t.Run("operations are the registered public routes", func(t *testing.T) {
		var documented []string
		paths, _ := doc["paths"].(map[string]any)
		for path, item := range paths {
			for method, op := range item.(map[string]any) {
				documented = append(documented, strings.ToUpper(method)+" "+path)
				o, _ := op.(map[string]any)
				if o["operationId"] == nil || o["responses"] == nil {
					t.Errorf("%s %s lacks operationId or responses", method, path)
				}
			}
		}
		registered := slices.Clone(a.patterns)
		sort.Strings(documented)
		sort.Strings(registered)
		if diff := cmp.Diff(registered, documented); diff != "" {
			t.Errorf("operations (-registered +documented):\n%s", diff)
		}
		for _, p := range registered {
			if strings.HasPrefix(strings.SplitN(p, " ", 2)[1], "/internal/") {
				t.Errorf("internal route %s is public", p)
			}
		}
	})

	t.Run("schemas match the Go types", func(t *testing.T) {
		schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
		tests := []struct {
			schema string
			path   []string // to the object schema inside it
			typ    any
		}{
			{"Task", nil, api.Task{}},
			{"Step", nil, api.Step{}},
			{"Part", nil, api.Part{}},
			{"Error", nil, api.Error{}},
			{"Error", []string{"properties", "errors", "items"}, ittybit.Error{}},
			{"CreateTaskRequest", nil, api.CreateTaskRequest{}},
			{"Options", nil, encoders.Options{}},
			{"File", nil, encoders.File{}},
			{"TaskList", nil, api.TaskList{}},
			{"Project", nil, api.Project{}},
			{"ProjectRequest", nil, api.ProjectRequest{}},
			{"Key", nil, api.Key{}},
			{"KeyRequest", nil, api.KeyRequest{}},
			{"Connection", nil, api.Connection{}},
			{"ConnectionRequest", nil, api.ConnectionRequest{}},
		}
		for _, tc := range tests {
			name := strings.TrimSpace(tc.schema + " " + strings.Join(tc.path, "."))
			t.Run(name, func(t *testing.T) {
				s, _ := schemas[tc.schema].(map[string]any)
				for _, k := range tc.path {
					s, _ = s[k].(map[string]any)
				}
				props, _ := s["properties"].(map[string]any)
				if props == nil {
					t.Fatalf("schema %s has no properties", name)
				}
				var documented []string
				for p := range props {
					documented = append(documented, p)
				}
				sort.Strings(documented)
				fields := jsonFields(reflect.TypeOf(tc.typ))
				if diff := cmp.Diff(fields, documented); diff != "" {
					t.Errorf("%T's JSON fields and schema %s's properties differ (-Go +schema):\n%s", tc.typ, name, diff)
				}
				req, _ := s["required"].([]any)
				for _, r := range req {
					if _, ok := props[r.(string)]; !ok {
						t.Errorf("required %q is not a property", r)
					}
				}
			})
		}
	})
}

// jsonFields returns the JSON names of t's encoded fields, sorted,
// following embedded structs as encoding/json does.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// collectRefs gathers every "$ref" value in v.
func collectRefs(v any, refs *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				*refs = append(*refs, s)
				continue
			}
			collectRefs(e, refs)
		}
	case []any:
		for _, e := range x {
			collectRefs(e, refs)
		}
	}
}

// resolve follows a local JSON pointer ("#/components/schemas/Task");
// it returns what is wrong, or "".
func resolve(doc map[string]any, ref string) (any, string) {
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, "not a local reference (#/…)"
	}
	var cur any = doc
	for _, tok := range strings.Split(ptr, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, "goes through a non-object at " + tok
		}
		if cur, ok = m[tok]; !ok {
			return nil, "no " + tok
		}
	}
	if _, ok := cur.(map[string]any); !ok {
		return nil, "does not name a schema object"
	}
	return cur, ""
}
