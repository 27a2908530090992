//go:build !linux

package test

import "os/exec"

// setDeathSignal does nothing here: only Linux has a parent-death signal;
// t.Cleanup still kills every process a test started.
func setDeathSignal(*exec.Cmd) {}
