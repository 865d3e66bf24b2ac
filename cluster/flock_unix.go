//go:build unix

package cluster

import (
	"os"
	"syscall"
)

// flockNB fails if another process holds bolt's lock on f (bolt takes an
// exclusive flock on raft.db while the node runs). The lock is released
// when f is closed.
func flockNB(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
