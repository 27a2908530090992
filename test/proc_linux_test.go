package test

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child if the test binary dies
// (a -timeout panic, a killed go test), so no server outlives its test.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
