package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/internal/harness"
)

// BenchmarkReassignmentLatency measures, with real processes, the time
// from kill -9 of a node (not the leader) to the moment the leader's
// replicated assignments no longer name it: gossip failure detection, the
// scheduler round and the raft write. 3 nodes with 2 ext-prover children
// each, 12 miners x 48 deadlines from a devnet (1 s epochs: the chain
// only has to exist). Target under 10 s (issue 5).
func BenchmarkReassignmentLatency(b *testing.B) {
	bin := harness.Binary(b)
	work := b.TempDir()
	var spec strings.Builder
	spec.WriteString("Seed = \"reassign-bench\"\n")
	for i := range dlMiners {
		fmt.Fprintf(&spec, "[[Miners]]\nID = %d\nSectorSize = \"2KiB\"\nSectors = 96\n", 1000+i)
	}
	specPath := filepath.Join(work, "spec.toml")
	if err := writeFileErr(specPath, spec.String()); err != nil {
		b.Fatal(err)
	}
	apiInfo, _ := startDevnetProcess(b, bin, filepath.Join(work, "dn"), specPath, time.Second)
	var total time.Duration
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		// Only --poster members are given deadlines.
		nodes := startClusterWith(b, 3, func(j int, extraInit ...string) *harness.Node {
			n := harness.NewNode(b, fmt.Sprintf("n%d", j+1), extraInit...)
			writeFile(b, filepath.Join(n.Home, "ext-prover.cfg"), twoChildren)
			return n
		}, "--ext-prover", "--poster", "--chain-api", apiInfo)
		for m := range dlMiners {
			nodes[0].MustRun("miner", "add", fmt.Sprintf("t0%d", 1000+m), "--sector-size", "2KiB")
		}
		leader := findLeader(b, nodes)
		victim := nodes[0]
		if victim == leader {
			victim = nodes[1]
		}
		waitForWhy(b, benchSetupBound, func() (bool, string) {
			v, err := scheduleOf(leader)
			saw := fmt.Sprintf("error %v, %d slots, %d without owner, %d owned by %s, %d unplaced", err, len(v.Slots), len(owned(v, "")), len(owned(v, victim.ID)), victim.ID, len(v.Unplaced))
			if len(v.Unplaced) > 0 {
				saw += fmt.Sprintf(" (first: %+v)", v.Unplaced[0])
			}
			return err == nil && len(v.Slots) > 0 && len(owned(v, "")) == 0 && len(owned(v, victim.ID)) > 0, saw
		})
		// Gossip settled: every node sees all three alive, so the kill below
		// is the only change the failure detector has to notice.
		waitFor(b, benchSetupBound, func() bool { return allSeeAlive(nodes) })
		b.StartTimer()
		killedAt := time.Now()
		victim.Kill()
		lat := waitReassigned(b, leader, victim.ID, killedAt)
		b.StopTimer()
		total += lat
		b.Logf("kill -9 %s -> its deadlines reassigned in the leader's state: %v", victim.ID, lat.Round(time.Millisecond))
		for _, n := range nodes {
			n.Kill()
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/reassign")
}

// allSeeAlive reports whether every node's gossip sees every node alive.
func allSeeAlive(nodes []*harness.Node) bool {
	for _, n := range nodes {
		var ms []cluster.Member
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.Client(n.Token()).Call(ctx, "VSM.ClusterMembers", &ms)
		cancel()
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
		}
		if err != nil || alive != len(nodes) {
			return false
		}
	}
	return true
}
