package test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ittybit-oss/ittybit"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func ours(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func under(path, prefix string) bool {
	r := rel(path)
	return r == prefix || strings.HasPrefix(r, prefix+"/")
}

// leaves are the packages of ours that use only the standard library, so
// that every package may import them: the root package (the error
// vocabulary, "") and internal/jsonobj (JSON objects and strings read as
// encoding/json reads them, faster).
var leaves = []string{"", "internal/jsonobj"}

// TestLayering checks the import rules of ARCHITECTURE.md on every package's
// dependencies (direct and indirect), so a violation cannot hide behind an
// intermediate package.
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	stdlibOnly := func(deps []string) []string {
		var bad []string
		for _, d := range deps {
			if strings.Contains(strings.Split(d, "/")[0], ".") && !ours(d) {
				bad = append(bad, d)
			}
		}
		return bad
	}
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		var ourDeps []string
		for _, d := range p.Deps {
			if ours(d) {
				ourDeps = append(ourDeps, rel(d))
			}
		}
		// only checks that p imports nothing of ours but the shared leaves
		// and allowed, and nothing third-party.
		only := func(rule string, allowed ...string) {
			for _, d := range ourDeps {
				if !slices.Contains(leaves, d) && !slices.Contains(allowed, d) {
					t.Errorf("%s imports %s: %s", r, d, rule)
				}
			}
			if bad := stdlibOnly(p.Deps); len(bad) > 0 {
				t.Errorf("%s imports third-party %v", r, bad)
			}
		}
		switch {
		case slices.Contains(leaves, r):
			if len(ourDeps) > 0 || len(stdlibOnly(p.Deps)) > 0 {
				t.Errorf("%q (a leaf every package may import) must use the standard library only; it imports %v %v", r, ourDeps, stdlibOnly(p.Deps))
			}
		case r == "encoders":
			only("encoders may import only the standard library, the root package and internal/jsonobj")
		case under(p.ImportPath, "encoders"):
			for _, d := range ourDeps {
				if !slices.Contains(leaves, d) && !under(module+"/"+d, "encoders") {
					t.Errorf("%s imports %s: encoders/... may import only encoders/..., the root package and internal/jsonobj", r, d)
				}
			}
		case under(p.ImportPath, "storage"):
			// Storage moves bytes: it knows nothing of encoding.
			for _, d := range ourDeps {
				if !slices.Contains(leaves, d) && !under(module+"/"+d, "storage") {
					t.Errorf("%s imports %s: storage/... may import only storage/... and the root package", r, d)
				}
			}
		case r == "steps":
			only("steps may import only encoders and controlplane/api", "encoders", "controlplane/api")
		case r == "controlplane/api" || r == "controlplane/client":
			only("the API types and the client may import only encoders", "encoders", "controlplane/api")
		}
		if under(p.ImportPath, "controlplane") {
			for _, d := range ourDeps {
				if under(module+"/"+d, "agent") || under(module+"/"+d, "plugins") {
					t.Errorf("%s imports %s: the control plane never imports agent or plugins", r, d)
				}
			}
		}
	}
}

// TestDirectImports checks who may import os/exec, hashicorp/raft and the
// plugin machinery (go-plugin, hclog) directly.
func TestDirectImports(t *testing.T) {
	execAllowed := []string{"encoders/ffmpeg", "encoders/probe", "encoders/detect", "plugins/host",
		// Test support: encoderstest runs ffmpeg to make clips, s3test runs
		// versitygw as a real S3 server. Only tests import them.
		"encoders/encoderstest", "storage/s3test",
		// The benchmark harness starts ittybit and ffmpeg to measure them;
		// release builds an earlier release with git and go for it and for
		// the rolling-upgrade test.
		"test/bench", "test/release"}
	for _, p := range listPackages(t) {
		r := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if imp == "os/exec" && !slices.Contains(execAllowed, r) {
				t.Errorf("%s imports os/exec; only %v may start processes", r, execAllowed)
			}
			// test/bench runs a bare hashicorp/raft cluster (the anchor the
			// API's write throughput is measured against) and its floor
			// (test/bench/floornode).
			if strings.HasPrefix(imp, "github.com/hashicorp/raft") && r != "controlplane/internal/store" && !under(p.ImportPath, "test/bench") {
				t.Errorf("%s imports %s; only controlplane/internal/store may", r, imp)
			}
			if strings.HasPrefix(imp, "github.com/hashicorp/go-plugin") && !under(p.ImportPath, "plugins") {
				t.Errorf("%s imports %s; only plugins/... may", r, imp)
			}
			// hclog is the logger go-plugin and hashicorp/raft take: only at
			// those two boundaries.
			if strings.HasPrefix(imp, "github.com/hashicorp/go-hclog") && !under(p.ImportPath, "plugins") && r != "controlplane/internal/store" {
				t.Errorf("%s imports %s; only plugins/... and controlplane/internal/store may", r, imp)
			}
		}
	}
}
