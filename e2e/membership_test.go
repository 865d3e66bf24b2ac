package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/internal/harness"
)

func peersOf(t *testing.T, n *harness.Node) []cluster.Peer {
	t.Helper()
	var peers []cluster.Peer
	if err := n.Client(n.Token()).Call(context.Background(), "VSM.ClusterPeers", &peers); err != nil {
		t.Fatal(err)
	}
	return peers
}

func TestRemoveDeadPeer(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var others []*harness.Node
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	nodes = append([]*harness.Node{leader}, others...)
	nodes[2].Kill()
	if _, errOut, err := nodes[0].Run("cluster", "remove-peer", "n9"); err == nil || !strings.Contains(errOut, "not in the raft configuration") {
		t.Fatalf("unknown peer: %v %s", err, errOut)
	}
	nodes[0].MustRun("cluster", "remove-peer", nodes[2].ID)
	peers := peersOf(t, nodes[1])
	if len(peers) != 2 || slices.ContainsFunc(peers, func(p cluster.Peer) bool { return p.ID == nodes[2].ID }) {
		t.Fatalf("after remove-peer: %+v", peers)
	}
	// The two left still form a quorum and take writes.
	nodes[1].MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
}

func TestJoinAnotherClusterIsRefused(t *testing.T) {
	nodes := startCluster(t, 3)
	secrets := filepath.Join(t.TempDir(), "s.json")
	nodes[0].MustRun("cluster", "secrets", "export", secrets)
	// Same secrets (so gossip can talk) but a cluster of its own.
	other := harness.NewNode(t, "y1", "--secrets", secrets)
	other.RunArgs = []string{"--bootstrap"}
	other.Start()
	other.WaitHealthy(20 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(other.MustRun("cluster", "status"), "Leader") || time.Now().Before(deadline.Add(-9*time.Second)) {
		time.Sleep(100 * time.Millisecond)
	}
	// Wait for its gossip meta to carry its cluster id.
	time.Sleep(1500 * time.Millisecond)
	_, errOut, err := other.Run("cluster", "join", nodes[0].Gossip)
	if err == nil || !strings.Contains(errOut, "belongs to cluster") {
		t.Fatalf("join of another cluster: %v %s", err, errOut)
	}
	if peers := peersOf(t, nodes[0]); len(peers) != 3 {
		t.Fatalf("the other cluster's node got in: %+v", peers)
	}
}

func TestDeadServerCleanup(t *testing.T) {
	nodes := startClusterWith(t, 3, func(i int, extraInit ...string) *harness.Node {
		return harness.NewNode(t, "d"+string(rune('1'+i)), extraInit...)
	})
	for _, n := range nodes { // restart with cleanup on; same data, same cluster
		if err := n.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		n.RunArgs = append(n.RunArgs, "--dead-server-cleanup", "2s")
		n.Start()
	}
	for _, n := range nodes {
		n.WaitHealthy(30 * time.Second)
	}
	leader := leaderOf(t, nodes)
	var victim *harness.Node
	for _, n := range nodes {
		if n != leader {
			victim = n
			break
		}
	}
	victim.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for slices.ContainsFunc(peersOf(t, leader), func(p cluster.Peer) bool { return p.ID == victim.ID }) {
		if time.Now().After(deadline) {
			t.Fatalf("dead voter %s was not cleaned up", victim.ID)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(leader.Log(), "removing member from raft") {
		t.Fatal("the leader's log does not say why the member was removed")
	}
}

// TestRemoveLivePeerStaysRemoved: the leader must not add back, through
// gossip, a member an operator removed while it still runs.
func TestRemoveLivePeerStaysRemoved(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var victim *harness.Node
	for _, n := range nodes {
		if n != leader {
			victim = n
		}
	}
	var other *harness.Node
	for _, n := range nodes {
		if n != leader && n != victim {
			other = n
		}
	}
	other.MustRun("cluster", "remove-peer", victim.ID) // from a follower: forwarded once
	time.Sleep(4 * time.Second)                        // several reconcile rounds
	if slices.ContainsFunc(peersOf(t, leader), func(p cluster.Peer) bool { return p.ID == victim.ID }) {
		t.Fatalf("%s was added back after remove-peer", victim.ID)
	}
}
