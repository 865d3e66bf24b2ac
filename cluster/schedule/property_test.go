package schedule

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// smallWorkload has room to spare: the busiest moment needs well under half
// of all GPUs and one deadline is at most 3 partitions (a third of one GPU's
// window). Node sizes vary from 1 to 4 GPUs.
var smallWorkload = workload{miners: 40, nodes: 6, gpus: [2]int{1, 4}, nonEmpty: 0.3, maxParts: 3, perPart: 4 * time.Minute}

const seeds = 60

// TestPropertyPlacesAllWhenCapacitySuffices: when capacity allows, a cold
// start places every deadline except windows already open with too little
// time left for any idle node (whose lateness is checked independently).
// "Capacity allows" is made precise by sufficient: at every epoch the total
// demand leaves each node room for the largest deadline. Then placing the
// windows in start order cannot fail (see docs/scheduler.md), and open
// windows, placed last and most urgent first, found room in every seed too.
func TestPropertyPlacesAllWhenCapacitySuffices(t *testing.T) {
	covered := 0
	for seed := range uint64(seeds) {
		w := smallWorkload
		w.nonEmpty = 0.1 + 0.4*float64(seed%5)/4 // from light to about full
		in := w.input(seed)
		if !sufficient(in) {
			continue
		}
		covered++
		p := mustCompute(t, in)
		if len(p.Assignments) != len(in.Miners)*Deadlines {
			t.Fatalf("seed %d: %d of %d deadlines owned", seed, len(p.Assignments), len(in.Miners)*Deadlines)
		}
		for _, u := range p.Unplaced {
			if u.Reason != UnplacedTooLate || !tooLate(in, u.Key) {
				t.Fatalf("seed %d: capacity suffices, yet %+v", seed, u)
			}
		}
		checkPlan(t, in, p)
	}
	if covered < seeds/3 {
		t.Fatalf("only %d of %d seeds have sufficient capacity: the test proves little", covered, seeds)
	}
}

// TestPropertyUnplacedExactlyReported: on clusters from comfortable to far
// over capacity, every deadline is owned by a node with room for it or
// listed in Unplaced, and each listed reason is true of the plan, checked
// independently: too-late (no idle node could finish what is left),
// too-big (no idle node could prove the full window) or no-capacity (no
// node but the one keeping it has room for it next to what it owns).
func TestPropertyUnplacedExactlyReported(t *testing.T) {
	reasons := map[UnplacedReason]int{}
	for seed := range uint64(seeds) {
		w := smallWorkload
		w.nonEmpty, w.maxParts = 0.3+0.7*float64(seed%4)/3, 3+int(seed%3)*3 // up to 9 partitions: too big for a 1-GPU node
		in := w.input(seed)
		if seed%3 == 0 {
			in.Current = mustCompute(t, in).Assignments
			in.Now += Epoch(100 + seed*37%PeriodEpochs)
			in.Nodes[int(seed)%len(in.Nodes)].Alive = false
		}
		p := mustCompute(t, in)
		checkPlan(t, in, p)
		listed := map[Key]bool{}
		d := demand(in, p.Assignments)
		for _, u := range p.Unplaced {
			listed[u.Key] = true
			reasons[u.Reason]++
			if why := unplacedWrong(in, d, u); why != "" {
				t.Fatalf("seed %d: %+v: %s", seed, u, why)
			}
		}
		for _, m := range in.Miners {
			for d := range Deadlines {
				k := Key{m.ID, uint8(d)}
				if _, ok := p.Owner(k); !ok && !listed[k] {
					t.Fatalf("seed %d: %v has no owner and is not reported", seed, k)
				}
			}
		}
	}
	if reasons[UnplacedNoCapacity] == 0 || reasons[UnplacedTooLate] == 0 {
		t.Fatalf("reasons seen %v: the workloads do not exercise the reporting", reasons)
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

// TestPropertyFixedPoint: re-planning a plan's own output settles at once,
// also on overloaded clusters and after failures, at the same Now: at most
// one more plan moves anything, and only for balance or to make room
// (moves of deadlines the first plan kept are capped per plan, so what they
// leave to do carries over), and the plan after that moves nothing.
func TestPropertyFixedPoint(t *testing.T) {
	heavy := smallWorkload
	heavy.nonEmpty, heavy.maxParts = 0.6, 6
	settle := func(t *testing.T, seed uint64, in Input, p Plan) {
		t.Helper()
		for round := range 3 {
			in.Current = p.Assignments
			p = mustCompute(t, in)
			if len(p.Moves) == 0 {
				return
			}
			for _, m := range p.Moves {
				// A deadline left unowned may find room in the next plan.
				settled := m.Reason == MoveRebalance || m.Reason == MoveMakeRoom || (m.From == "" && m.Reason == MoveNew)
				if round > 0 || !settled {
					t.Fatalf("seed %d: re-plan %d moved %+v", seed, round+1, m)
				}
			}
		}
	}
	for seed := range uint64(seeds) {
		for _, w := range []workload{smallWorkload, heavy} {
			in := w.input(seed)
			settle(t, seed, in, mustCompute(t, in))
			// A node fails; plan; then re-plan that.
			in.Current = mustCompute(t, in).Assignments
			in.Nodes[int(seed)%len(in.Nodes)].Alive = false
			settle(t, seed, in, mustCompute(t, in))
		}
	}
}

// TestPropertyFailureMovesOnlyItsDeadlines: when a node dies, all its
// deadlines move to live nodes, other deadlines move only for balance or to
// make room, at most RebalanceMoves of them and none whose window is open or
// about to open, and with spare capacity none is lost except open windows
// too squeezed to hand over.
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
		forced, extra := 0, 0
		for _, m := range p.Moves {
			switch {
			case m.From == dead && m.To != "" && m.Reason == MoveOwnerDead:
				forced++
			case m.Reason == MoveRebalance || m.Reason == MoveMakeRoom:
				extra++
				if from := windowStart(in, m.Key); from < in.Now+DefaultConfig().MoveMargin {
					t.Fatalf("seed %d: %+v moves a window that is open or about to open (proving from %d, now %d)", seed, m, from, in.Now)
				}
			default:
				t.Fatalf("seed %d: move %+v", seed, m)
			}
		}
		if forced != ofDead || extra > DefaultConfig().RebalanceMoves {
			t.Fatalf("seed %d: %d forced moves, dead node owned %d; %d moves for balance", seed, forced, ofDead, extra)
		}
		// What is lost is a window open now, handed over squeezed, and
		// the reason is true of the plan.
		d := demand(in, p.Assignments)
		for _, u := range p.Unplaced {
			if why := unplacedWrong(in, d, u); windowStart(in, u.Key) >= in.Now || why != "" {
				t.Fatalf("seed %d: %+v: %s", seed, u, why)
			}
		}
	}
}
