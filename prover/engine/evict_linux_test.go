package engine

import (
	"os"
	"syscall"
)

// evict drops a file's clean pages from the page cache
// (posix_fadvise(POSIX_FADV_DONTNEED)), so the next reads go to the disk.
// It touches only this file's pages and needs no privileges.
func evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	const fadvDontNeed = 4
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
		return e
	}
	return nil
}
