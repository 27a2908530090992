//go:build !linux

package s3test

import "os/exec"

// setParentDeath does nothing where there is no parent-death signal; the
// test's cleanup still kills the server.
func setParentDeath(*exec.Cmd) {}
