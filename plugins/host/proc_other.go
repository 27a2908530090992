//go:build !linux

package host

import "os/exec"

// guardParentDeath does nothing where the kernel has no parent-death
// signal; Close still kills every plugin.
func guardParentDeath(*exec.Cmd) {}
