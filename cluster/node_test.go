package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
)

func openNode(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Open(Config{NodeID: "n1", Dir: dir, RaftAddr: "127.0.0.1:0", Bootstrap: true, HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSingleNodeWritesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n := openNode(t, dir)
	id := waitClusterID(t, n)
	for _, c := range []fsm.Command{
		fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}},
		fsm.PutStorage{Instance: fsm.StorageInstance{Name: "s"}},
		fsm.PutLocations{Locations: []fsm.SectorLocation{{SectorID: fsm.SectorID{Miner: 1000, Number: 7}, Sealed: "s", Cache: "s"}}},
	} {
		if _, err := n.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	_, err := n.Apply(ctx, fsm.RemoveStorage{Name: "s"})
	if !errors.Is(err, fsm.ErrRejected) {
		t.Fatalf("rejection not passed back: %v", err)
	}
	if err := n.SnapshotNow(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Apply(ctx, fsm.PutLocations{Locations: []fsm.SectorLocation{{SectorID: fsm.SectorID{Miner: 1000, Number: 8}, Sealed: "s", Cache: "s"}}}); err != nil {
		t.Fatal(err)
	}
	if err := n.ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Restart from snapshot + log tail.
	n = openNode(t, dir)
	defer n.Close(ctx)
	if got := waitClusterID(t, n); got != id {
		t.Fatalf("cluster id after restart %q, want %q", got, id)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.FSM().SectorCount(1000) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after restart %d sectors, want 2", n.FSM().SectorCount(1000))
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := n.Status()
	if st.State != "Leader" || st.ClusterID != id || st.AppliedIndex == 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestAdvertiseMustBeDialable(t *testing.T) {
	_, err := Open(Config{NodeID: "n1", Dir: t.TempDir(), RaftAddr: "0.0.0.0:0"})
	if err == nil {
		t.Fatal("an unspecified advertise address was accepted")
	}
}

// waitClusterID waits for the leader to establish leadership, which gives
// a new cluster its id, and returns the id.
func waitClusterID(t *testing.T, n *Node) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		id, err := n.EnsureClusterID(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if id != "" {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatal("no cluster id after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHomeOfAnotherClusterIsRefused(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	waitClusterID(t, n)
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster-id"), []byte("0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, dir)
	defer n.Close(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := n.EnsureClusterID(context.Background())
		if errors.Is(err, ErrWrongCluster) && strings.Contains(err.Error(), "0123456789abcdef") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("home of another cluster not refused: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConsistentReadAfterRestartFromSnapshot: raft keeps log entries below
// a snapshot (TrailingLogs), and the FSM holds them through the snapshot.
// A consistent read after a restart must not wait for them to be applied
// again.
func TestConsistentReadAfterRestartFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n := openNode(t, dir)
	waitClusterID(t, n)
	for _, c := range []fsm.Command{
		fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}},
	} {
		if _, err := n.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.SnapshotNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, dir)
	defer n.Close(ctx)
	waitClusterID(t, n)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := n.ConsistentRead(rctx); err != nil {
		t.Fatalf("consistent read after a restart from a snapshot: %v", err)
	}
	if err := n.ReadReady(); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.FSM().Miner(1000); !ok {
		t.Fatal("the restored state lacks the miner")
	}
}
