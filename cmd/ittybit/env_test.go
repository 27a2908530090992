package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestFlagsFromEnv(t *testing.T) {
	var (
		expect int
		join   []string
		data   string
		http   string
	)
	newCmd := func() *cobra.Command {
		cmd := &cobra.Command{Use: "server"}
		fl := cmd.Flags()
		fl.IntVar(&expect, "bootstrap-expect", 0, "")
		fl.StringArrayVar(&join, "join", nil, "")
		fl.StringVar(&data, "data", "data", "")
		fl.StringVar(&http, "http", "127.0.0.1:8080", "")
		return cmd
	}
	t.Setenv("ITTYBIT_BOOTSTRAP_EXPECT", "3")
	t.Setenv("ITTYBIT_JOIN", "dns://a:8080, http://b:8080")
	t.Setenv("ITTYBIT_DATA", "/var/lib/ittybit")
	cmd := newCmd()
	if err := cmd.Flags().Parse([]string{"--data", "/data"}); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd); err != nil {
		t.Fatal(err)
	}
	if expect != 3 || !slices.Equal(join, []string{"dns://a:8080", "http://b:8080"}) {
		t.Errorf("from the environment: expect %d, join %q", expect, join)
	}
	if data != "/data" {
		t.Errorf("--data %q: the command line must win over $ITTYBIT_DATA", data)
	}
	if http != "127.0.0.1:8080" || cmd.Flags().Changed("http") {
		t.Errorf("--http %q changed=%v: a flag with no variable keeps its default", http, cmd.Flags().Changed("http"))
	}
	if !cmd.Flags().Changed("bootstrap-expect") {
		t.Error("a flag set from the environment must count as given, so that it overrides the config file")
	}

	t.Setenv("ITTYBIT_BOOTSTRAP_EXPECT", "three")
	err := flagsFromEnv(newCmd())
	if err == nil || !strings.Contains(err.Error(), "$ITTYBIT_BOOTSTRAP_EXPECT") || !strings.Contains(err.Error(), "--bootstrap-expect") {
		t.Errorf("a bad value: %v; want an error naming the variable and its flag", err)
	}
}
