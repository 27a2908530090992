package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// yamlKeys lists the yaml keys of a config file struct.
func yamlKeys(v any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			out[k] = true
		}
	}
	return out
}

// flagTable is README's table of the long-running commands' flags, with
// their config-file keys and environment variables.
func flagTable() string {
	var b strings.Builder
	b.WriteString("| command | flag | config file | environment | what it does |\n|---|---|---|---|---|\n")
	for _, c := range []struct {
		cmd  *cobra.Command
		keys map[string]bool
	}{
		{newServerCmd(io.Discard), yamlKeys(serverFile{})},
		{newAgentCmd(io.Discard), yamlKeys(agentFile{})},
	} {
		c.cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			key := strings.ReplaceAll(f.Name, "-", "_")
			switch {
			case f.Name == "config":
				key = "—"
			case c.keys[key]:
			case c.keys[key+"s"]:
				key += "s"
			default:
				key = "—"
			}
			if key != "—" {
				key = "`" + key + "`"
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "[]" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				def = fmt.Sprintf(" (default `%s`)", f.DefValue)
			}
			usage := strings.ReplaceAll(f.Usage, "|", "\\|")
			fmt.Fprintf(&b, "| %s | `--%s` | %s | `%s` | %s%s |\n", c.cmd.Name(), f.Name, key, envName(f.Name), usage, def)
		})
	}
	return b.String()
}

const (
	flagsBegin = "<!-- flags:begin (made by TestREADMEFlagTable; ITTYBIT_UPDATE_README=1 remakes it) -->\n"
	flagsEnd   = "<!-- flags:end -->"
)

// TestREADMEFlagTable: README lists every flag of ittybit server and
// ittybit agent, with its config key and environment variable, as the
// commands define them today.
func TestREADMEFlagTable(t *testing.T) {
	path := "../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, flagsBegin), strings.Index(readme, flagsEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no flag table between %q and %q", flagsBegin, flagsEnd)
	}
	want := flagTable()
	got := readme[i+len(flagsBegin) : j]
	if got == want {
		return
	}
	if os.Getenv("ITTYBIT_UPDATE_README") != "" {
		if err := os.WriteFile(path, []byte(readme[:i+len(flagsBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's flag table is out of date; run ITTYBIT_UPDATE_README=1 go test -run TestREADMEFlagTable ./cmd/ittybit/. Want:\n%s", want)
}
