package schedule

import (
	"fmt"
	"slices"
	"testing"
)

// BenchmarkColdStart plans the benchmark cluster from nothing, once per
// seed (a different workload and Now each time), and reports min, median
// and max over the runs of: deadlines left without an owner for lack of
// capacity (must be 0), windows open at Now too late for any idle node
// (lost whatever the scheduler does), and the balance after the cold
// start's open windows as peak/lowerbound.
func BenchmarkColdStart(b *testing.B) {
	var noCap, late, ratio []float64
	seed := uint64(1)
	for b.Loop() {
		in := benchWorkload.input(seed)
		seed++
		p := mustCompute(b, in)
		c := map[UnplacedReason]int{}
		for _, u := range p.Unplaced {
			c[u.Reason]++
		}
		noCap = append(noCap, float64(c[UnplacedNoCapacity]+c[UnplacedTooBig]))
		late = append(late, float64(c[UnplacedTooLate]))
		peak, lower := balance(in, p.Assignments, WindowEpochs+ChallengeLookback)
		ratio = append(ratio, peak/lower)
	}
	reportSpread(b, "unplaced", noCap)
	reportSpread(b, "too-late", late)
	reportSpread(b, "peak/lowerbound", ratio)
}

// BenchmarkSteadyState runs the scheduler over 12 simulated hours after a
// cold start: every 30 minutes of chain time the leader plans, and plans
// again at once while a plan moves deadlines for balance (the real loop
// plans every 2 seconds); one node dies after 3 hours and a new one joins
// after 6. It reports min, median and max over runs (one seed each) of the
// busiest node's peak share over the lower bound: "steady", the worst of
// any plan in the last 4 hours, and "worst", the worst from the first hour
// on (when the cold start's squeezed windows have closed), including the
// plans right after the failure and the join; and of the deadlines moved
// per hour for balance or to make room, over the whole run (the failure
// and the join included) and over the last 4 hours (churn once settled).
// With rebalancing and, as the baseline, without.
func BenchmarkSteadyState(b *testing.B) {
	for _, sc := range []struct {
		name string
		w    workload
	}{
		{"1k-miners-100-gpus", workload{miners: 1_000, nodes: 25, gpus: [2]int{4, 4}, nonEmpty: 0.15, maxParts: 4, perPart: benchWorkload.perPart}},
		{"10k-miners-1000-gpus", benchWorkload},
	} {
		b.Run(sc.name, func(b *testing.B) {
			var steady, worst, moves, quiet, baseSteady, baseWorst []float64
			seed := uint64(1)
			for b.Loop() {
				r := simulate(b, sc.w, seed, true)
				base := simulate(b, sc.w, seed, false)
				seed++
				steady, worst, moves = append(steady, r.steady), append(worst, r.worst), append(moves, r.balanceMovesPerHour)
				quiet = append(quiet, r.steadyMovesPerHour)
				baseSteady, baseWorst = append(baseSteady, base.steady), append(baseWorst, base.worst)
			}
			reportSpread(b, "steady-peak/lb", steady)
			reportSpread(b, "worst-peak/lb", worst)
			reportSpread(b, "moves/h", moves)
			reportSpread(b, "steady-moves/h", quiet)
			reportSpread(b, "baseline-steady-peak/lb", baseSteady)
			reportSpread(b, "baseline-worst-peak/lb", baseWorst)
		})
	}
}

type simResult struct {
	steady              float64 // highest peak/lowerbound of any plan in the last 4 hours
	worst               float64 // highest peak/lowerbound of any plan from the first hour on
	balanceMovesPerHour float64
	steadyMovesPerHour  float64 // in the last 4 hours
}

const (
	simStep  = 60 // epochs between plans: 30 minutes
	simHours = 12
)

func simulate(tb testing.TB, w workload, seed uint64, rebalance bool) simResult {
	in := w.input(seed)
	if !rebalance {
		in.Config.RebalanceMoves = -1
	}
	in.Current = mustCompute(tb, in).Assignments
	var r simResult
	balanceMoves, steadyMoves := 0, 0
	steps := simHours * 120 / simStep
	for step := 1; step <= steps; step++ {
		in.Now += simStep
		switch step * simStep / 120 {
		case 3:
			in.Nodes[0].Alive = false
		case 6:
			if in.Nodes[len(in.Nodes)-1].ID != "node-new" {
				in.Nodes = append(in.Nodes, Node{ID: "node-new", GPUs: w.gpus[1], PartitionTime: w.perPart, Alive: true})
			}
		}
		// The loop plans every 2 seconds, 900 times between two steps;
		// planning until a round moves nothing (or 40 rounds) is the same.
		for range 40 {
			p := mustCompute(tb, in)
			in.Current = p.Assignments
			n := 0
			for _, m := range p.Moves {
				if m.Reason == MoveRebalance || m.Reason == MoveMakeRoom {
					n++
				}
			}
			balanceMoves += n
			if step*simStep > (simHours-4)*120 {
				steadyMoves += n
			}
			if n == 0 {
				break
			}
		}
		if step*simStep >= 120 {
			peak, lower := balance(in, in.Current, WindowEpochs+ChallengeLookback)
			r.worst = max(r.worst, peak/lower)
			if step*simStep >= (simHours-4)*120 {
				r.steady = max(r.steady, peak/lower)
			}
		}
	}
	r.balanceMovesPerHour = float64(balanceMoves) / simHours
	r.steadyMovesPerHour = float64(steadyMoves) / 4
	return r
}

// reportSpread reports the min, median and max of xs as name-min, name-med
// and name-max.
func reportSpread(b *testing.B, name string, xs []float64) {
	if len(xs) == 0 {
		return
	}
	s := slices.Sorted(slices.Values(xs))
	b.ReportMetric(s[0], name+"-min")
	b.ReportMetric(s[len(s)/2], name+"-med")
	b.ReportMetric(s[len(s)-1], name+"-max")
	if testing.Verbose() {
		b.Logf("%s over %d runs: %s", name, len(xs), fmt.Sprint(s))
	}
}
