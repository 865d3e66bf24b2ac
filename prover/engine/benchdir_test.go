package engine

import "os"

// benchDir is where the benchmark partition lives: $VSM_BENCH_DIR (to
// measure a particular disk or network mount) or a fresh temporary
// directory on the default temp disk.
func benchDir() (string, error) {
	if d := os.Getenv("VSM_BENCH_DIR"); d != "" {
		return os.MkdirTemp(d, "vsm-bench-")
	}
	return os.MkdirTemp("", "vsm-bench-")
}
