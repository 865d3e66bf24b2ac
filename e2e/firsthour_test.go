package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness"
)

// TestSecondDaemonOnHomeFailsAtOnce: a second `daemon run` on a home in
// use used to hang forever on bolt's lock on raft.db, silent and deaf to
// SIGTERM. It must fail at once and name the process holding the home.
func TestSecondDaemonOnHomeFailsAtOnce(t *testing.T) {
	n := harness.NewNode(t, "n1")
	n.RunArgs = []string{"--bootstrap"}
	n.Start()
	n.WaitHealthy(20 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, n.Bin, "--home", n.Home, "daemon", "run", "--bootstrap", "--listen", fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second daemon on %s was still running after 10 s:\n%s", n.Home, out)
	}
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("in use by process %d", n.Pid())) {
		t.Fatalf("second daemon: %v after %v, want an error naming process %d:\n%s", err, time.Since(start), n.Pid(), out)
	}
	// The first node is unharmed.
	n.MustRun("cluster", "status")
}
