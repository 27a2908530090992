package ffmpeg

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts ffmpeg in its own process group, so that cancelling kills
// it with any children, and has the kernel kill it if its parent dies.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the process group led by cmd's process.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
