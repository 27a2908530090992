package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment variable that stands for a flag of the long-
// running commands: ITTYBIT_ and the flag's name in capitals, dashes as
// underscores (--bootstrap-expect: ITTYBIT_BOOTSTRAP_EXPECT).
func envName(flag string) string {
	return "ITTYBIT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// flagsFromEnv sets every flag of cmd not given on the command line from
// its environment variable, where set: flags override the environment,
// which overrides the config file (a flag set here counts as given). A
// repeatable flag takes a comma-separated list. Containers and systemd
// units configure servers and agents this way.
func flagsFromEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		values := []string{v}
		if strings.HasSuffix(f.Value.Type(), "Array") {
			values = strings.Split(v, ",")
		}
		for _, one := range values {
			if e := cmd.Flags().Set(f.Name, strings.TrimSpace(one)); e != nil {
				err = usageError{fmt.Errorf("invalid_option: $%s=%q (for --%s): %v", envName(f.Name), v, f.Name, e)}
				return
			}
		}
	})
	return err
}
