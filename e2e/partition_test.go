package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
	"github.com/vsm-project/vsm/internal/harness/netns"
)

// TestPartitionedLeader puts each node in its own network namespace and
// cuts the leader off: the minority side accepts no write, the majority
// elects a leader and takes writes, and after healing all converge.
func TestPartitionedLeader(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Skipf("partition tests need network namespaces (run as root with iproute2): %v", err)
	}
	nw, err := netns.New(t, 3)
	if err != nil {
		t.Fatal(err)
	}
	nodes := startClusterWith(t, 3, func(i int, extraInit ...string) *harness.Node {
		return harness.NewNodeIn(t, fmt.Sprintf("n%d", i+1), nw, nw.Host(i), extraInit...)
	})
	leader := leaderOf(t, nodes)
	leader.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	leader.MustRun("storage", "add", "s", "--path", "/s")
	put := func(n *harness.Node, num uint64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: num}, Sealed: "s", Cache: "s"}
		return n.Client(n.Token()).Call(ctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc})
	}
	if err := put(leader, 1); err != nil {
		t.Fatal(err)
	}
	li := -1
	var majority []*harness.Node
	for i, n := range nodes {
		if n == leader {
			li = i
		} else {
			majority = append(majority, n)
		}
	}
	if err := nw.Partition(li); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()

	// The old leader steps down (no quorum) and refuses writes.
	if err := put(leader, 100); err == nil {
		t.Fatal("the partitioned old leader acknowledged a write")
	}
	// The majority elects a new leader and takes writes.
	newLeader := leaderOf(t, majority)
	t.Logf("new leader %s elected %v after the partition", newLeader.ID, time.Since(cut).Round(time.Millisecond))
	for num := uint64(2); num <= 20; num++ {
		if err := put(majority[int(num)%2], num); err != nil {
			t.Fatalf("majority write %d: %v", num, err)
		}
	}
	if err := nw.Heal(li); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for num := uint64(1); num <= 20; num++ {
		want = append(want, num)
	}
	waitConverged(t, nodes, want)
	for _, n := range nodes {
		if have := allLocations(t, n); have[100] || len(have) != 20 {
			t.Fatalf("node %s after healing holds %d locations (sector 100 present: %v)", n.ID, len(have), have[100])
		}
	}
}
