package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		nodes := []*harness.Node{harness.NewNode(b, "n1")}
		secrets := filepath.Join(b.TempDir(), "secrets.json")
		nodes[0].MustRun("cluster", "secrets", "export", secrets)
		for j := 1; j < 3; j++ {
			nodes = append(nodes, harness.NewNode(b, fmt.Sprintf("n%d", j+1), "--secrets", secrets))
		}
		var gossip []string
		for _, n := range nodes {
			gossip = append(gossip, n.Gossip)
		}
		for _, n := range nodes {
			if err := writeFileErr(filepath.Join(n.Home, "ext-prover.cfg"), twoChildren); err != nil {
				b.Fatal(err)
			}
			n.RunArgs = []string{"--bootstrap-expect", "3", "--join", strings.Join(gossip, ","), "--ext-prover", "--chain-api", apiInfo}
			n.Start()
		}
		for _, n := range nodes {
			n.WaitHealthy(60 * time.Second)
		}
		for m := range dlMiners {
			nodes[0].MustRun("miner", "add", fmt.Sprintf("t0%d", 1000+m), "--sector-size", "2KiB")
		}
		leader := findLeader(b, nodes)
		victim := nodes[0]
		if victim == leader {
			victim = nodes[1]
		}
		waitFor(b, 60*time.Second, func() bool {
			v, err := scheduleOf(leader)
			return err == nil && len(owned(v, "")) == 0 && len(owned(v, victim.ID)) > 0
		})
		time.Sleep(2 * time.Second) // let gossip settle after the start
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
