package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
	"github.com/vsm-project/vsm/rpc"
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// raftTimings are the three raft timeouts a node's config.toml sets.
type raftTimings struct{ heartbeat, election, lease string }

// earlierTimings are the defaults before issue 13 (raft's own): the
// baseline the failover figures are compared with in the same run.
var earlierTimings = raftTimings{"1s", "1s", "500ms"}

// withTimings inits nodes as startCluster does, then writes t into each
// home's config.toml; a zero t keeps the defaults `daemon init` wrote.
func withTimings(b *testing.B, t raftTimings) func(i int, extraInit ...string) *harness.Node {
	return func(i int, extraInit ...string) *harness.Node {
		n := harness.NewNode(b, fmt.Sprintf("n%d", i+1), extraInit...)
		if t == (raftTimings{}) {
			return n
		}
		path := filepath.Join(n.Home, "config.toml")
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		for key, v := range map[string]string{"HeartbeatTimeout": t.heartbeat, "ElectionTimeout": t.election, "LeaderLeaseTimeout": t.lease} {
			re := regexp.MustCompile(`(?m)^` + key + ` = ".*"$`)
			if !re.Match(raw) {
				b.Fatalf("%s has no %s line", path, key)
			}
			raw = re.ReplaceAll(raw, []byte(fmt.Sprintf("%s = %q", key, v)))
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			b.Fatal(err)
		}
		return n
	}
}

// BenchmarkFailover measures kill -9 of the leader to the first write
// acknowledged by a new leader, over 20 trials on a 3-node cluster: with
// the default raft timeouts (see docs/configuration.md) and, in the same
// run, with the earlier 1 s / 1 s / 500 ms as the baseline. Only writes
// submitted after the kill count.
func BenchmarkFailover(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, p := range []struct {
			name string
			t    raftTimings
		}{{"default", raftTimings{}}, {"earlier", earlierTimings}} {
			samples := failoverTrials(b, startClusterWith(b, 3, withTimings(b, p.t)), 20)
			b.ReportMetric(slices.Min(samples).Seconds(), p.name+"-min-s")
			b.ReportMetric(percentile(samples, 0.5).Seconds(), p.name+"-p50-s")
			b.ReportMetric(percentile(samples, 0.99).Seconds(), p.name+"-p99-s")
			b.ReportMetric(slices.Max(samples).Seconds(), p.name+"-max-s")
		}
	}
}

// failoverTrials kills the leader of nodes trials times, restarting it
// after each, and returns kill-to-first-acknowledged-write for each.
func failoverTrials(b *testing.B, nodes []*harness.Node, trials int) []time.Duration {
	defer func() {
		for _, n := range nodes {
			n.Kill()
		}
	}()
	leaderOf(b, nodes).MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	leaderOf(b, nodes).MustRun("storage", "add", "s", "--path", "/s")
	var samples []time.Duration
	for trial := 0; trial < trials; trial++ {
		leader := leaderOf(b, nodes)
		var survivors []*rpc.Client
		for _, n := range nodes {
			if n != leader {
				survivors = append(survivors, n.Client(n.Token()))
			}
		}
		killed := time.Now()
		leader.Kill()
		samples = append(samples, firstAck(b, survivors, killed, uint64(trial)))
		leader.Start()
		leader.WaitHealthy(benchSetupBound)
		waitVoters(b, nodes[0], 3)
	}
	return samples
}

// firstAck writes from 4 goroutines to the survivors until one write is
// acknowledged, and returns how long after `since` that was.
func firstAck(b *testing.B, clients []*rpc.Client, since time.Time, trial uint64) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan time.Time, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for n := uint64(0); ctx.Err() == nil; n++ {
				loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: trial<<40 | uint64(g)<<32 | n}, Sealed: "s", Cache: "s"}
				cctx, ccancel := context.WithTimeout(ctx, time.Second)
				err := clients[int(n)%len(clients)].Call(cctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc})
				ccancel()
				if err == nil {
					select {
					case done <- time.Now():
					default:
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}(g)
	}
	select {
	case at := <-done:
		return at.Sub(since)
	case <-ctx.Done():
		b.Fatal("no write acknowledged within 30 s of the leader kill")
		return 0
	}
}

func waitVoters(b *testing.B, n *harness.Node, want int) {
	deadline := time.Now().Add(benchSetupBound)
	for time.Now().Before(deadline) {
		var peers []cluster.Peer
		if err := n.Client(n.Token()).Call(context.Background(), "VSM.ClusterPeers", &peers); err == nil {
			ok := 0
			for _, p := range peers {
				if p.Voter && p.Status != nil {
					ok++
				}
			}
			if ok == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("cluster did not get back to %d healthy voters", want)
}

// BenchmarkReplicatedThroughput compares batched write throughput of a
// 3-node cluster with a single node, measured in the same run.
func BenchmarkReplicatedThroughput(b *testing.B) {
	const batches, batchSize, writers = 200, 1000, 8
	measure := func(nodes []*harness.Node) float64 {
		leader := leaderOf(b, nodes)
		leader.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
		leader.MustRun("storage", "add", "s", "--path", "/s")
		cl := leader.Client(leader.Token())
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < batches; i += writers {
					locs := make([]fsm.SectorLocation, batchSize)
					for j := range locs {
						locs[j] = fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: uint64(i*batchSize + j)}, Sealed: "s", Cache: "s"}
					}
					if err := cl.Call(context.Background(), "VSM.SectorLocationPut", nil, locs); err != nil {
						b.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		rate := float64(batches*batchSize) / time.Since(start).Seconds()
		for _, n := range nodes {
			n.Kill()
		}
		return rate
	}
	for i := 0; i < b.N; i++ {
		single := harness.NewNode(b, "solo")
		single.RunArgs = []string{"--bootstrap"}
		single.Start()
		single.WaitHealthy(benchSetupBound)
		one := measure([]*harness.Node{single})
		three := measure(startCluster(b, 3))
		b.ReportMetric(one, "1node-loc/s")
		b.ReportMetric(three, "3node-loc/s")
		b.ReportMetric(three/one, "ratio")
	}
}

// BenchmarkGossipDeadDetection measures kill -9 of a member until another
// member's gossip reports it dead.
func BenchmarkGossipDeadDetection(b *testing.B) {
	for i := 0; i < b.N; i++ {
		nodes := startCluster(b, 3)
		var samples []time.Duration
		for trial := 0; trial < 5; trial++ {
			victim, observer := nodes[1+trial%2], nodes[0]
			killed := time.Now()
			victim.Kill()
			for {
				var ms []cluster.Member
				if err := observer.Client(observer.Token()).Call(context.Background(), "VSM.ClusterMembers", &ms); err == nil {
					if j := slices.IndexFunc(ms, func(m cluster.Member) bool { return m.ID == victim.ID }); j >= 0 && ms[j].State == "dead" {
						break
					}
				}
				if time.Since(killed) > 30*time.Second {
					b.Fatal("member never reported dead")
				}
				time.Sleep(20 * time.Millisecond)
			}
			samples = append(samples, time.Since(killed))
			victim.Start()
			victim.WaitHealthy(benchSetupBound)
			waitVoters(b, observer, 3)
		}
		b.ReportMetric(percentile(samples, 0.5).Seconds(), "p50-s")
		b.ReportMetric(slices.Max(samples).Seconds(), "max-s")
		for _, n := range nodes {
			n.Kill()
		}
	}
}
