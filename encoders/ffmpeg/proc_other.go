//go:build !linux

package ffmpeg

import "os/exec"

func setProcAttrs(cmd *exec.Cmd) {}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
