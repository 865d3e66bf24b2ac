package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
	"github.com/vsm-project/vsm/rpc"
)

// startCluster inits n homes on loopback sharing one set of secrets and
// starts them with --bootstrap-expect n, each joining all the others.
func startCluster(t testing.TB, n int) []*harness.Node {
	t.Helper()
	return startClusterWith(t, n, func(i int, extraInit ...string) *harness.Node {
		return harness.NewNode(t, fmt.Sprintf("n%d", i+1), extraInit...)
	})
}

// startClusterWith is startCluster with a choice of where nodes live and
// extra `daemon run` flags.
func startClusterWith(t testing.TB, n int, newNode func(i int, extraInit ...string) *harness.Node, runArgs ...string) []*harness.Node {
	t.Helper()
	nodes := []*harness.Node{newNode(0)}
	secrets := filepath.Join(t.TempDir(), "secrets.json")
	nodes[0].MustRun("cluster", "secrets", "export", secrets)
	for i := 1; i < n; i++ {
		nodes = append(nodes, newNode(i, "--secrets", secrets))
	}
	var gossip []string
	for _, nd := range nodes {
		gossip = append(gossip, nd.Gossip)
	}
	for _, nd := range nodes {
		nd.RunArgs = append([]string{"--bootstrap-expect", fmt.Sprint(n), "--join", strings.Join(gossip, ",")}, runArgs...)
		nd.Start()
	}
	for _, nd := range nodes {
		nd.WaitHealthy(setupBound(t, 30*time.Second))
	}
	return nodes
}

func status(t testing.TB, n *harness.Node) (cluster.Status, error) {
	var st cluster.Status
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := n.Client(n.Token()).Call(ctx, "VSM.Status", &st)
	return st, err
}

// leaderOf returns the leader a majority of nodes name (itself included):
// a node that has just won an election another member is about to win
// again in a higher term (as happens while a cluster forms, with short
// raft timeouts) is not returned.
func leaderOf(t testing.TB, nodes []*harness.Node) *harness.Node {
	t.Helper()
	deadline := time.Now().Add(setupBound(t, 20*time.Second))
	for time.Now().Before(deadline) {
		named := map[string]int{}
		var leaders []*harness.Node
		for _, n := range nodes {
			st, err := status(t, n)
			if err != nil {
				continue
			}
			if st.LeaderID != "" {
				named[st.LeaderID]++
			}
			if st.State == "Leader" && st.LeaderID == n.ID {
				leaders = append(leaders, n)
			}
		}
		for _, n := range leaders {
			if named[n.ID] > len(nodes)/2 {
				return n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

// writer puts one location per request, each with a fresh sector number,
// rotating over the members when a request fails, and records what was
// acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []uint64
	first map[uint64]time.Time
}

func (w *writer) run(ctx context.Context, id int, clients []*rpc.Client) {
	for seq, target := uint64(0), id; ctx.Err() == nil; seq++ {
		num := uint64(id)<<32 | seq
		loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: num}, Sealed: "s", Cache: "s"}
		for ctx.Err() == nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := clients[target%len(clients)].Call(cctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc})
			cancel()
			if err == nil {
				w.mu.Lock()
				w.acked = append(w.acked, num)
				w.first[num] = time.Now()
				w.mu.Unlock()
				break
			}
			target++
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// seedWriteTarget finds the leader, adds the miner and storage instance the
// writers' locations refer to, and returns a client for every node.
func seedWriteTarget(t testing.TB, nodes []*harness.Node) (*harness.Node, []*rpc.Client) {
	t.Helper()
	leader := leaderOf(t, nodes)
	leader.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	leader.MustRun("storage", "add", "s", "--path", "/s")
	clients := make([]*rpc.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(n.Token())
	}
	return leader, clients
}

// start runs n writers until ctx ends; wait on the group before reading acked.
func (w *writer) start(ctx context.Context, n int, clients []*rpc.Client) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); w.run(ctx, i, clients) }(i)
	}
	return &wg
}

func allLocations(t *testing.T, n *harness.Node) map[uint64]bool {
	t.Helper()
	var locs []fsm.SectorLocation
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Client(n.Token()).Call(ctx, "VSM.SectorLocationList", &locs, 1000, 0, 0); err != nil {
		t.Fatalf("list on %s: %v", n.ID, err)
	}
	out := make(map[uint64]bool, len(locs))
	for _, l := range locs {
		out[l.Number] = true
	}
	return out
}

// waitConverged waits until every live node holds every acknowledged write.
func waitConverged(t *testing.T, nodes []*harness.Node, acked []uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for {
			have := allLocations(t, n)
			missing := 0
			for _, a := range acked {
				if !have[a] {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s lacks %d of %d acknowledged writes", n.ID, missing, len(acked))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestLeaderKillDuringWrites(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			nodes := startCluster(t, size)
			leader, clients := seedWriteTarget(t, nodes)
			w := &writer{first: map[uint64]time.Time{}}
			ctx, cancel := context.WithCancel(context.Background())
			wg := w.start(ctx, 4, clients)
			time.Sleep(time.Second)
			killedAt := time.Now()
			leader.Kill()
			time.Sleep(4 * time.Second)
			cancel()
			wg.Wait()

			var afterKill []time.Time
			for _, at := range w.first {
				if at.After(killedAt) {
					afterKill = append(afterKill, at)
				}
			}
			if len(afterKill) == 0 {
				t.Fatal("no write was acknowledged after the leader was killed")
			}
			first := slices.MinFunc(afterKill, func(a, b time.Time) int { return a.Compare(b) })
			t.Logf("%d writes acknowledged, %d after the kill; first acknowledged write %v after kill -9 of leader %s",
				len(w.acked), len(afterKill), first.Sub(killedAt).Round(time.Millisecond), leader.ID)

			var live []*harness.Node
			for _, n := range nodes {
				if n != leader {
					live = append(live, n)
				}
			}
			if l := leaderOf(t, live); l == leader {
				t.Fatal("killed node still leader")
			}
			waitConverged(t, live, w.acked)
			// The killed node comes back from its own disk and catches up.
			leader.Start()
			leader.WaitHealthy(30 * time.Second)
			waitConverged(t, []*harness.Node{leader}, w.acked)
		})
	}
}

func TestWriteToFollowerAndConsistentRead(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var follower *harness.Node
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	// Every member accepts every command: the follower forwards.
	follower.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	follower.MustRun("storage", "add", "s", "--path", "/s")
	follower.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "7", "--sealed", "s", "--cache", "s")
	for _, n := range nodes {
		out := n.MustRun("sector", "location", "get", "--miner", "t01000", "--number", "7", "--consistent", "--json")
		if !strings.Contains(out, `"number": 7`) {
			t.Fatalf("consistent read on %s: %s", n.ID, out)
		}
	}
	// A rejected write forwarded from a follower keeps its meaning.
	_, errOut, err := follower.Run("sector", "location", "put", "--miner", "t01000", "--number", "8", "--sealed", "nope", "--cache", "s")
	if err == nil || !strings.Contains(errOut, `"nope" does not exist`) || !strings.Contains(errOut, "code 1000") {
		t.Fatalf("forwarded rejection: %v %s", err, errOut)
	}
	peers := follower.MustRun("cluster", "peers")
	if strings.Count(peers, "voter") != 3 || !strings.Contains(peers, "(leader)") {
		t.Fatalf("peers:\n%s", peers)
	}
}

func TestJoinAsNonVoterThenPromotedAndLeave(t *testing.T) {
	nodes := startCluster(t, 3)
	secrets := filepath.Join(t.TempDir(), "s.json")
	nodes[0].MustRun("cluster", "secrets", "export", secrets)
	extra := harness.NewNode(t, "n4", "--secrets", secrets)
	extra.RunArgs = []string{"--join", nodes[1].Gossip}
	extra.Start()
	extra.WaitHealthy(30 * time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var peers []cluster.Peer
		err := nodes[0].Client(nodes[0].Token()).Call(context.Background(), "VSM.ClusterPeers", &peers)
		if err == nil && slices.ContainsFunc(peers, func(p cluster.Peer) bool { return p.ID == "n4" && p.Voter }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n4 never became a voter: %+v %v", peers, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	extra.MustRun("cluster", "leave")
	deadline = time.Now().Add(20 * time.Second)
	for {
		var peers []cluster.Peer
		err := nodes[0].Client(nodes[0].Token()).Call(context.Background(), "VSM.ClusterPeers", &peers)
		if err == nil && !slices.ContainsFunc(peers, func(p cluster.Peer) bool { return p.ID == "n4" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n4 still in the configuration after leave: %+v %v", peers, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// It left; it did not die: gossip, the CLI and the status page say so.
	waitUntil(t, 20*time.Second, "n4 to show as left", func() bool {
		var ms []cluster.Member
		err := nodes[0].Client(nodes[0].Token()).Call(context.Background(), "VSM.ClusterMembers", &ms)
		i := slices.IndexFunc(ms, func(m cluster.Member) bool { return m.ID == "n4" })
		return err == nil && i >= 0 && ms[i].State == "left"
	})
	if _, page := fetchURL(t, "http://"+nodes[0].API+"/"); !strings.Contains(page, `class="state-left">left`) {
		t.Fatal("the status page does not show n4 as left")
	}
}

func TestJoinWithWrongGossipKeyIsRefused(t *testing.T) {
	nodes := startCluster(t, 3)
	stranger := harness.NewNode(t, "x1") // its own secrets
	stranger.RunArgs = []string{"--bootstrap"}
	stranger.Start()
	stranger.WaitHealthy(20 * time.Second)
	_, errOut, err := stranger.Run("cluster", "join", nodes[0].Gossip)
	if err == nil || !strings.Contains(errOut, "Gossip.Key") {
		t.Fatalf("join with another key: %v %s", err, errOut)
	}
	var peers []cluster.Peer
	if err := nodes[0].Client(nodes[0].Token()).Call(context.Background(), "VSM.ClusterPeers", &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 3 {
		t.Fatalf("the stranger got in: %+v", peers)
	}
}

// TestRollingRestartUnderWrites restarts every node in turn (SIGTERM, so a
// leader hands over first) while clients write; nothing acknowledged is lost.
func TestRollingRestartUnderWrites(t *testing.T) {
	nodes := startCluster(t, 3)
	_, clients := seedWriteTarget(t, nodes)
	w := &writer{first: map[uint64]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	wg := w.start(ctx, 3, clients)
	for _, n := range nodes {
		time.Sleep(500 * time.Millisecond)
		if err := n.Stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		n.Start()
		n.WaitHealthy(30 * time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("%d writes acknowledged across the rolling restart", len(w.acked))
	if len(w.acked) < 50 {
		t.Fatalf("only %d writes went through", len(w.acked))
	}
	waitConverged(t, nodes, w.acked)
}

// TestNonVoterServesReads joins a read replica that never votes.
func TestNonVoterServesReads(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[0].MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	secrets := filepath.Join(t.TempDir(), "s.json")
	nodes[0].MustRun("cluster", "secrets", "export", secrets)
	replica := harness.NewNode(t, "r1", "--secrets", secrets)
	replica.RunArgs = []string{"--join", nodes[0].Gossip, "--non-voter"}
	replica.Start()
	replica.WaitHealthy(30 * time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(replica.MustRun("miner", "list"), "t01000") {
		if time.Now().After(deadline) {
			t.Fatal("the replica never received the miner")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(4 * time.Second) // longer than the promotion delay
	var peers []cluster.Peer
	if err := nodes[0].Client(nodes[0].Token()).Call(context.Background(), "VSM.ClusterPeers", &peers); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(peers, func(p cluster.Peer) bool { return p.ID == "r1" })
	if i < 0 || peers[i].Voter {
		t.Fatalf("replica in configuration: %+v", peers)
	}
	// It serves reads, consistent ones included, and forwards writes.
	replica.MustRun("storage", "add", "s", "--path", "/s")
	replica.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "1", "--sealed", "s", "--cache", "s")
	replica.MustRun("sector", "location", "get", "--miner", "t01000", "--number", "1", "--consistent", "--json")
}
