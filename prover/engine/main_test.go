package engine

import (
	"os"
	"testing"
)

// TestMain removes the benchmark partition, which is shared by all
// benchmark runs of the process and so outlives any one b.TempDir.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		_ = os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}
