package schedule

import (
	"testing"
	"time"
)

// TestTiesSpreadOverEqualNodes: three equal nodes and miners whose
// deadlines are mostly empty, as on a devnet. Empty deadlines cost nothing,
// so every placement of one is a tie; they used to go to the node whose id
// sorts first (77/79/40 deadlines over three nodes).
func TestTiesSpreadOverEqualNodes(t *testing.T) {
	in := Input{Now: testNow, Nodes: []Node{node("n1", 1), node("n2", 1), node("n3", 1)}}
	for m := range 4 {
		mi := Miner{ID: uint64(1000 + m), PeriodStart: Epoch(m * 311)}
		mi.Partitions[m*7%Deadlines] = 1 // one sector each
		in.Miners = append(in.Miners, mi)
	}
	p := mustCompute(t, in)
	total := 4 * Deadlines
	for _, n := range p.Nodes {
		// An even share is 64; allow a few either way.
		if n.Deadlines < total/3-6 || n.Deadlines > total/3+6 {
			t.Fatalf("deadlines per node %+v: want %d±6 each", p.Nodes, total/3)
		}
	}
}

// TestRebalanceAfterJoin: a node joins a balanced cluster; over the next
// hours of plans it takes a fair share of the load, each plan moves at most
// RebalanceMoves deadlines and none whose window is open or about to open,
// and once balanced nothing moves any more.
func TestRebalanceAfterJoin(t *testing.T) {
	w := workload{miners: 60, nodes: 4, gpus: [2]int{2, 2}, nonEmpty: 0.25, maxParts: 3, perPart: benchWorkload.perPart}
	in := w.input(3)
	first := mustCompute(t, in)
	for _, u := range first.Unplaced {
		if u.Reason != UnplacedTooLate {
			t.Fatalf("the cluster is over capacity before the join: %+v", u)
		}
	}
	in.Current = first.Assignments
	in.Nodes = append(in.Nodes, node("node-new", 2))
	cfg := DefaultConfig()
	quiet := 0 // consecutive plans without a move
	for step := range 48 {
		in.Now += 30 // a quarter hour
		p := mustCompute(t, in)
		checkPlan(t, in, p)
		if len(p.Moves) > cfg.RebalanceMoves {
			t.Fatalf("step %d: %d moves, cap %d: %+v", step, len(p.Moves), cfg.RebalanceMoves, p.Moves)
		}
		for _, m := range p.Moves {
			if m.Reason != MoveRebalance {
				t.Fatalf("step %d: %+v", step, m)
			}
			if from := windowStart(in, m.Key); from < in.Now+cfg.MoveMargin {
				t.Fatalf("step %d: %+v moves a window proving from %d, now %d", step, m, from, in.Now)
			}
		}
		if len(p.Moves) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		in.Current = p.Assignments
	}
	if quiet < 8 {
		t.Fatalf("still moving deadlines after 12 hours (%d quiet plans at the end)", quiet)
	}
	peak, lower := balance(in, in.Current, int(2*cfg.UsableEpochs()))
	if peak > lower*(1+cfg.RebalanceSlack)+0.05 {
		t.Fatalf("peak share %.3f vs lower bound %.3f after rebalancing", peak, lower)
	}
	// The bound fell by a fifth with the fifth node; the busiest node
	// followed, so the new node took real work.
	before, _ := balance(in, first.Assignments, int(2*cfg.UsableEpochs()))
	if peak > before*0.9 {
		t.Fatalf("busiest share %.3f after the join, %.3f before", peak, before)
	}
}

// TestDevnetLoadSettles: on a devnet a partition takes a millisecond, so
// peaks are a few micro-GPUs and whole partitions make every node look
// unbalanced against the bound. Rebalancing may even them out once, at the
// first plan after the cold start, and must then leave them alone as time
// passes: no churn.
func TestDevnetLoadSettles(t *testing.T) {
	w := workload{miners: 6, nodes: 3, gpus: [2]int{1, 1}, nonEmpty: 0.5, maxParts: 2, perPart: time.Millisecond}
	for seed := range uint64(20) {
		in := w.input(seed)
		in.Current = mustCompute(t, in).Assignments
		for step := range 8 {
			in.Now += 60
			p := mustCompute(t, in)
			for _, m := range p.Moves {
				if step > 0 || m.Reason != MoveRebalance {
					t.Fatalf("seed %d step %d: %+v", seed, step, m)
				}
			}
			in.Current = p.Assignments
		}
	}
}

// TestRebalanceGoesPastANodeThatCannotShed: two nodes share the busiest
// peak exactly (a partition takes 9 of the 72 usable epochs, so demand
// does not round). n1, tried first, holds one 4-partition deadline that
// makes any other node busier still, so it cannot shed; n2 holds two
// 2-partition deadlines and can. Rebalancing used to stop at n1; it must
// set it aside and relieve n2, so that one node, not two, is left at the
// peak.
func TestRebalanceGoesPastANodeThatCannotShed(t *testing.T) {
	in := Input{Now: testNow}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		in.Nodes = append(in.Nodes, Node{ID: id, GPUs: 1, PartitionTime: 9 * EpochDuration, Alive: true})
	}
	const d = 20 // every miner's deadline 20 opens together, 20*60 epochs ahead
	owners := []struct {
		parts int
		node  string
	}{{4, "n1"}, {2, "n2"}, {2, "n2"}, {1, "n3"}, {1, "n4"}}
	for i, o := range owners {
		m := Miner{ID: uint64(1000 + i), PeriodStart: testNow}
		m.Partitions[d] = o.parts
		in.Miners = append(in.Miners, m)
		in.Current = append(in.Current, Assignment{Key: Key{Miner: m.ID, Deadline: d}, Owner: Owner{Node: o.node}})
	}
	p := mustCompute(t, in)
	checkPlan(t, in, p)
	owner := map[uint64]string{}
	for _, a := range p.Assignments {
		if a.Deadline == d {
			owner[a.Miner] = a.Node
		}
	}
	if owner[1000] != "n1" {
		t.Fatalf("the 4-partition deadline moved to %s; no node could take it below the peak", owner[1000])
	}
	if owner[1001] == "n2" && owner[1002] == "n2" {
		t.Fatalf("n2 kept both 2-partition deadlines: rebalancing stopped at n1, which cannot shed")
	}
	peak, _ := balance(in, p.Assignments, 0)
	if want := 4 * 9.0 / float64(in.Config.withDefaults().UsableEpochs()); peak > want+1e-9 {
		t.Fatalf("peak share %.3f, want %.3f (n1's deadline alone)", peak, want)
	}
}
