package host

import (
	"os/exec"
	"syscall"
)

// guardParentDeath has the kernel SIGKILL the plugin when the process that
// started it dies, even by SIGKILL, which no cleanup code sees. go-plugin
// has no such guard: a plugin outlives a crashed host. The plugin's ffmpeg
// children carry the same guard (encoders/ffmpeg), so they follow.
func guardParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
