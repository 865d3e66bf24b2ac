package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeersJSONRecoveryAfterLosingTwoOfThree follows docs/runbooks/outage.md:
// two of three voters are lost for good, the survivor cannot elect a
// leader, and the operator recovers it with a generated peers.json.
func TestPeersJSONRecoveryAfterLosingTwoOfThree(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	leader.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	leader.MustRun("storage", "add", "s", "--path", "/s")
	for _, num := range []string{"1", "2", "3"} {
		leader.MustRun("sector", "location", "put", "--miner", "t01000", "--number", num, "--sealed", "s", "--cache", "s")
	}
	survivor := nodes[0]
	waitConverged(t, nodes, []uint64{1, 2, 3})
	nodes[1].Kill()
	nodes[2].Kill()

	// Without quorum the survivor accepts no write.
	if _, _, err := survivor.Run("sector", "location", "put", "--miner", "t01000", "--number", "4", "--sealed", "s", "--cache", "s"); err == nil {
		t.Fatal("a write succeeded without quorum")
	}

	// While it runs, the CLI refuses to touch the raft data.
	if _, errOut, err := survivor.Run("cluster", "peers-json", "--keep", survivor.ID); err == nil || !strings.Contains(errOut, "stop the node first") {
		t.Fatalf("peers-json on a running node: %v %s", err, errOut)
	}
	survivor.Kill()
	if _, errOut, err := survivor.Run("cluster", "peers-json", "--keep", "n9"); err == nil || !strings.Contains(errOut, "not in this node's last configuration") {
		t.Fatalf("unknown id: %v %s", err, errOut)
	}
	out := survivor.MustRun("cluster", "peers-json", "--keep", survivor.ID)
	if !strings.Contains(out, `"id": "`+survivor.ID+`"`) {
		t.Fatalf("peers-json said %s", out)
	}

	survivor.RunArgs = nil // the same node, no bootstrap flags needed
	survivor.Start()
	survivor.WaitHealthy(30 * time.Second)
	st, err := status(t, survivor)
	if err != nil || st.State != "Leader" {
		t.Fatalf("after recovery: %+v %v", st, err)
	}
	survivor.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "4", "--sealed", "s", "--cache", "s")
	have := allLocations(t, survivor)
	for _, n := range []uint64{1, 2, 3, 4} {
		if !have[n] {
			t.Fatalf("sector %d missing after recovery: %v", n, have)
		}
	}
	if _, err := os.Stat(filepath.Join(survivor.Home, "raft", "peers.json.applied")); err != nil {
		t.Fatalf("peers.json was not marked applied: %v", err)
	}
	// A restart does not apply it again and keeps the data.
	survivor.Kill()
	survivor.Start()
	survivor.WaitHealthy(30 * time.Second)
	if have := allLocations(t, survivor); len(have) != 4 {
		t.Fatalf("after restart: %v", have)
	}
}
