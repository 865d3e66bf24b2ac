package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness"
)

func TestBackupAndRestoreThroughRaft(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var follower *harness.Node
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	follower.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	follower.MustRun("storage", "add", "s", "--path", "/s")
	follower.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "1", "--sealed", "s", "--cache", "s")

	backup := filepath.Join(t.TempDir(), "backup.vsm")
	out := follower.MustRun("cluster", "snapshot", "save", backup)
	if !strings.Contains(out, "1 sectors") {
		t.Fatalf("save said %q", out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}

	// Change the state after the backup, then restore through a follower
	// (it redirects to the leader).
	follower.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "2", "--sealed", "s", "--cache", "s")
	follower.MustRun("sector", "location", "delete", "--miner", "t01000", "--number", "1")
	follower.MustRun("cluster", "snapshot", "restore", backup)
	for _, n := range nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			have := allLocations(t, n)
			if have[1] && !have[2] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s after restore holds %v, want only sector 1", n.ID, have)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// A damaged backup is refused before anything is sent.
	b, _ := os.ReadFile(backup)
	bad := filepath.Join(t.TempDir(), "bad.vsm")
	os.WriteFile(bad, append(bytes.Clone(b[:len(b)-10]), make([]byte, 10)...), 0o600)
	if _, errOut, err := follower.Run("cluster", "snapshot", "restore", bad); err == nil || !strings.Contains(errOut, "nothing was restored") {
		t.Fatalf("damaged backup: %v %s", err, errOut)
	}
	// Another cluster's backup is refused by the leader.
	other := harness.NewNode(t, "o1")
	other.RunArgs = []string{"--bootstrap"}
	other.Start()
	other.WaitHealthy(20 * time.Second)
	foreign := filepath.Join(t.TempDir(), "foreign.vsm")
	other.MustRun("cluster", "snapshot", "save", foreign)
	if _, errOut, err := leader.Run("cluster", "snapshot", "restore", foreign); err == nil || !strings.Contains(errOut, "is from cluster") {
		t.Fatalf("foreign backup: %v %s", err, errOut)
	}
	if have := allLocations(t, leader); !have[1] {
		t.Fatal("a refused restore changed the state")
	}
}
