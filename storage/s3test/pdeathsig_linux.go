package s3test

import (
	"os/exec"
	"syscall"
)

// setParentDeath kills the server when the test binary dies, even by
// SIGKILL, so no versitygw outlives its test.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
