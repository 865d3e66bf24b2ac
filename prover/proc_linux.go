package prover

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the child in its own process group, so a Ctrl-C on the
// daemon's terminal reaches only the daemon (which then closes the children
// in order), and asks the kernel to kill the child if the daemon dies
// without closing it, so no orphan keeps a GPU busy.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the child and anything it started.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
