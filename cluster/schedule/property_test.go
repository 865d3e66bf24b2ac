package schedule

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// smallWorkload has room to spare: the busiest moment needs well under half
// of all GPUs and one deadline is at most 3 partitions (a third of one GPU's
// window), so greedy placement must find room for every deadline that has
// not opened yet. Node sizes vary from 1 to 4 GPUs.
var smallWorkload = workload{miners: 40, nodes: 6, gpus: [2]int{1, 4}, nonEmpty: 0.3, maxParts: 3, perPart: 4 * time.Minute}

const seeds = 60

// TestPropertyCapacitySuffices: with spare capacity every deadline has an
// owner, nothing is reported except windows open at the cold start that are
// too late to prove, no node is over capacity, and the load is balanced.
func TestPropertyCapacitySuffices(t *testing.T) {
	for seed := range uint64(seeds) {
		in := smallWorkload.input(seed)
		p := mustCompute(t, in)
		if len(p.Assignments) != len(in.Miners)*Deadlines {
			t.Fatalf("seed %d: %d of %d deadlines owned", seed, len(p.Assignments), len(in.Miners)*Deadlines)
		}
		for _, u := range p.Unplaced {
			if u.Reason != UnplacedTooLate {
				t.Fatalf("seed %d: %+v", seed, u)
			}
		}
		checkPlan(t, in, p)
		// After the cold-start windows: peak within 1.5x the lower bound on
		// these small clusters (integral deadlines on 1-GPU nodes are lumpy).
		peak, lower := balance(in, p.Assignments, WindowEpochs+ChallengeLookback)
		if peak > 1.5*lower+0.15 {
			t.Fatalf("seed %d: peak %.3f vs lower bound %.3f", seed, peak, lower)
		}
	}
}

// TestPropertyDeterministic: the same input, in any order, gives the same plan.
func TestPropertyDeterministic(t *testing.T) {
	for seed := range uint64(seeds) {
		in := smallWorkload.input(seed)
		in.Current = mustCompute(t, in).Assignments[:len(in.Miners)*Deadlines/2]
		in.Nodes[int(seed)%len(in.Nodes)].Alive = false
		p1 := mustCompute(t, in)
		r := rand.New(rand.NewPCG(seed, 1))
		shuffled := in
		shuffled.Miners = append([]Miner(nil), in.Miners...)
		shuffled.Nodes = append([]Node(nil), in.Nodes...)
		shuffled.Current = append([]Assignment(nil), in.Current...)
		r.Shuffle(len(shuffled.Miners), func(i, j int) { shuffled.Miners[i], shuffled.Miners[j] = shuffled.Miners[j], shuffled.Miners[i] })
		r.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
		r.Shuffle(len(shuffled.Current), func(i, j int) { shuffled.Current[i], shuffled.Current[j] = shuffled.Current[j], shuffled.Current[i] })
		p2 := mustCompute(t, shuffled)
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("seed %d: plans differ with the input reordered", seed)
		}
		if p3 := mustCompute(t, in); !reflect.DeepEqual(p1, p3) {
			t.Fatalf("seed %d: plans differ on the same input", seed)
		}
	}
}

// TestPropertyFixedPoint: re-planning a plan's own output moves nothing, also
// on overloaded clusters and after failures, at the same Now and later.
func TestPropertyFixedPoint(t *testing.T) {
	heavy := smallWorkload
	heavy.nonEmpty, heavy.maxParts = 0.6, 6
	for seed := range uint64(seeds) {
		for _, w := range []workload{smallWorkload, heavy} {
			in := w.input(seed)
			p := mustCompute(t, in)
			in.Current = p.Assignments
			if again := mustCompute(t, in); len(again.Moves) != 0 {
				t.Fatalf("seed %d: re-plan moved %+v", seed, again.Moves[0])
			}
			// A node fails; plan; then re-plan that.
			in.Nodes[int(seed)%len(in.Nodes)].Alive = false
			p = mustCompute(t, in)
			in.Current = p.Assignments
			if again := mustCompute(t, in); len(again.Moves) != 0 {
				t.Fatalf("seed %d after a failure: re-plan moved %+v", seed, again.Moves[0])
			}
		}
	}
}

// TestPropertyFailureMovesOnlyItsDeadlines: when a node dies, only its
// deadlines move, all to live nodes, and with spare capacity none is lost
// except open windows too squeezed to hand over.
func TestPropertyFailureMovesOnlyItsDeadlines(t *testing.T) {
	for seed := range uint64(seeds) {
		in := smallWorkload.input(seed)
		in.Current = mustCompute(t, in).Assignments
		in.Now += Epoch(100 + seed*37%PeriodEpochs) // some time later
		r := rand.New(rand.NewPCG(seed, 2))
		dead := in.Nodes[r.IntN(len(in.Nodes))].ID
		in.Nodes[nodeIndex(in, dead)].Alive = false
		p := mustCompute(t, in)
		checkPlan(t, in, p)
		ofDead := 0
		for _, a := range in.Current {
			if a.Node == dead {
				ofDead++
			}
		}
		if len(p.Moves) != ofDead {
			t.Fatalf("seed %d: %d moves, dead node owned %d", seed, len(p.Moves), ofDead)
		}
		for _, m := range p.Moves {
			if m.From != dead || m.To == "" || m.Reason != MoveOwnerDead {
				t.Fatalf("seed %d: move %+v", seed, m)
			}
		}
		for _, u := range p.Unplaced {
			if u.Reason != UnplacedTooLate {
				t.Fatalf("seed %d: %+v", seed, u)
			}
		}
	}
}
