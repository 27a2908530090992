package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func newHashKeyCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "hash-key [KEY]",
		Short: "Print the SHA-256 of an API key or node token, for a config file",
		Long:  "Print the hash to list under api_keys or node_tokens. With no argument the key is read from standard input, so it stays out of the shell history.",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := ""
			if len(args) == 1 {
				key = args[0]
			} else {
				line, err := bufio.NewReader(stdin).ReadString('\n')
				if err != nil && err != io.EOF {
					return err
				}
				key = strings.TrimSpace(line)
			}
			if key == "" {
				return usageError{fmt.Errorf("no key given")}
			}
			fmt.Fprintln(stdout, hashKey(key))
			return nil
		},
	}
}
