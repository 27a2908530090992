package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// This file builds a kustomization the way `kubectl apply -k` does, for
// the subset of kustomize the manifests use (and no more: a field it does
// not know is an error, so the test cannot silently check something else
// than what kubectl applies): resources (files and other kustomizations),
// RFC 6902 JSON patches with a kind/name target, and namespace.

// kustomization is the part of kustomize's Kustomization the manifests
// use.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Path   string `json:"path"`
		Target struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"target"`
	} `json:"patches,omitempty"`
}

// document is one object of a build, as generic JSON, with the file it
// came from.
type document struct {
	source string
	obj    map[string]any
}

func (d document) kind() string { s, _ := d.obj["kind"].(string); return s }

func (d document) name() string {
	meta, _ := d.obj["metadata"].(map[string]any)
	s, _ := meta["name"].(string)
	return s
}

// build returns the objects of the kustomization in dir.
func build(dir string) ([]document, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s/kustomization.yaml: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", dir, k.APIVersion, k.Kind)
	}
	var docs []document
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: resource %s: %w", dir, r, err)
		}
		if fi.IsDir() {
			sub, err := build(path)
			if err != nil {
				return nil, err
			}
			docs = append(docs, sub...)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		ds, err := splitDocuments(path, data)
		if err != nil {
			return nil, err
		}
		docs = append(docs, ds...)
	}
	for _, p := range k.Patches {
		path := filepath.Join(dir, p.Path)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: patch: %w", dir, err)
		}
		var ops []patchOp
		if err := yaml.UnmarshalStrict(data, &ops); err != nil {
			return nil, fmt.Errorf("%s: not an RFC 6902 patch: %w", path, err)
		}
		hits := 0
		for i, d := range docs {
			if d.kind() != p.Target.Kind || d.name() != p.Target.Name {
				continue
			}
			hits++
			obj, err := applyPatch(d.obj, ops)
			if err != nil {
				return nil, fmt.Errorf("%s on %s %s: %w", path, d.kind(), d.name(), err)
			}
			docs[i].obj = obj.(map[string]any)
		}
		if hits == 0 {
			return nil, fmt.Errorf("%s: no %s %s to patch", path, p.Target.Kind, p.Target.Name)
		}
	}
	if k.Namespace != "" {
		for _, d := range docs {
			meta, ok := d.obj["metadata"].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s without metadata", d.source, d.kind())
			}
			if d.kind() == "Namespace" {
				// kustomize renames the Namespace object too.
				meta["name"] = k.Namespace
				continue
			}
			meta["namespace"] = k.Namespace
		}
	}
	return docs, nil
}

var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocuments splits a YAML stream into its documents. Duplicate keys
// are errors here, before the generic decoding would keep the last.
func splitDocuments(source string, data []byte) ([]document, error) {
	var out []document
	for i, part := range separator.Split(string(data), -1) {
		js, err := yaml.YAMLToJSONStrict([]byte(part))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if string(js) == "null" {
			continue // comments only
		}
		var obj map[string]any
		if err := decodeJSON(js, &obj); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		out = append(out, document{source: source, obj: obj})
	}
	return out, nil
}

// decodeJSON decodes with numbers kept as written.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// patchOp is one operation of an RFC 6902 JSON patch.
type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// applyPatch applies add, remove, replace and test operations (kustomize
// takes move and copy too; the manifests do not use them).
func applyPatch(doc any, ops []patchOp) (any, error) {
	for _, op := range ops {
		tokens, err := pointer(op.Path)
		if err != nil {
			return nil, err
		}
		var value any
		if op.Op != "remove" {
			if op.Value == nil {
				return nil, fmt.Errorf("%s %s: no value", op.Op, op.Path)
			}
			if err := decodeJSON(op.Value, &value); err != nil {
				return nil, fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
			}
		}
		var f func(container any, key string) (any, error)
		switch op.Op {
		case "add":
			f = func(c any, key string) (any, error) { return addAt(c, key, value) }
		case "remove":
			f = removeAt
		case "replace":
			f = func(c any, key string) (any, error) {
				if _, err := getAt(c, key); err != nil {
					return nil, err
				}
				c, _ = removeAt(c, key)
				return addAt(c, key, value)
			}
		case "test":
			f = func(c any, key string) (any, error) {
				got, err := getAt(c, key)
				if err != nil {
					return nil, err
				}
				if !reflect.DeepEqual(got, value) {
					return nil, fmt.Errorf("test failed: %v is not %v", got, value)
				}
				return c, nil
			}
		default:
			return nil, fmt.Errorf("op %q %s: this test applies add, remove, replace and test", op.Op, op.Path)
		}
		if doc, err = at(doc, tokens, f); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
		}
	}
	return doc, nil
}

// pointer splits an RFC 6901 JSON pointer.
func pointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q: a JSON pointer starts with /", p)
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// at walks doc to the container of the last token and replaces that
// container by f's result.
func at(doc any, tokens []string, f func(container any, key string) (any, error)) (any, error) {
	if len(tokens) == 1 {
		return f(doc, tokens[0])
	}
	child, err := getAt(doc, tokens[0])
	if err != nil {
		return nil, err
	}
	child, err = at(child, tokens[1:], f)
	if err != nil {
		return nil, err
	}
	switch c := doc.(type) {
	case map[string]any:
		c[tokens[0]] = child
	case []any:
		i, _ := index(tokens[0], len(c))
		c[i] = child
	}
	return doc, nil
}

func getAt(c any, key string) (any, error) {
	switch c := c.(type) {
	case map[string]any:
		v, ok := c[key]
		if !ok {
			return nil, fmt.Errorf("no member %q", key)
		}
		return v, nil
	case []any:
		i, err := index(key, len(c)-1)
		if err != nil {
			return nil, err
		}
		return c[i], nil
	}
	return nil, fmt.Errorf("%q: not in an object or array", key)
}

func addAt(c any, key string, v any) (any, error) {
	switch c := c.(type) {
	case map[string]any:
		c[key] = v
		return c, nil
	case []any:
		if key == "-" {
			return append(c, v), nil
		}
		i, err := index(key, len(c))
		if err != nil {
			return nil, err
		}
		return append(c[:i], append([]any{v}, c[i:]...)...), nil
	}
	return nil, fmt.Errorf("%q: not in an object or array", key)
}

func removeAt(c any, key string) (any, error) {
	switch c := c.(type) {
	case map[string]any:
		if _, ok := c[key]; !ok {
			return nil, fmt.Errorf("no member %q", key)
		}
		delete(c, key)
		return c, nil
	case []any:
		i, err := index(key, len(c)-1)
		if err != nil {
			return nil, err
		}
		return append(c[:i:i], c[i+1:]...), nil
	}
	return nil, fmt.Errorf("%q: not in an object or array", key)
}

// index parses an array index no greater than max.
func index(key string, max int) (int, error) {
	i, err := strconv.Atoi(key)
	if err != nil || i < 0 || i > max || (len(key) > 1 && key[0] == '0') {
		return 0, errors.New("index " + strconv.Quote(key) + " out of range")
	}
	return i, nil
}
