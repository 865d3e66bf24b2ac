package schedule

import (
	"testing"
)

// BenchmarkPlanFromScratch: 10,000 miners x 48 deadlines over 1,000 GPUs
// with no current assignments. Reports the balance as peak/lowerbound: the
// busiest node's peak demand relative to its GPUs, divided by the best any
// placement could do (total demand at the busiest epoch over all GPUs).
func BenchmarkPlanFromScratch(b *testing.B) {
	in := benchWorkload.input(1)
	var p Plan
	for b.Loop() {
		p = mustCompute(b, in)
	}
	reportPlan(b, p)
	reportSteady(b, in, p)
}

// BenchmarkReplanNodeDead: the same cluster after one node dies. Only that
// node's deadlines may move.
func BenchmarkReplanNodeDead(b *testing.B) {
	in := benchWorkload.input(1)
	first := mustCompute(b, in)
	in.Current = first.Assignments
	in.Now += 200 // a while after the cold start, whose open windows have closed
	dead := in.Nodes[17].ID
	in.Nodes[17].Alive = false
	owned := 0
	for _, o := range first.Assignments {
		if o.Node == dead {
			owned++
		}
	}
	var p Plan
	for b.Loop() {
		p = mustCompute(b, in)
	}
	forced := 0
	for _, m := range p.Moves {
		switch {
		case m.From == dead:
			forced++
		case m.Reason != MoveRebalance && m.Reason != MoveMakeRoom:
			b.Fatalf("moved %v from live node %s (%s)", m.Key, m.From, m.Reason)
		}
	}
	if forced != owned {
		b.Fatalf("%d moves off the dead node, it owned %d", forced, owned)
	}
	b.ReportMetric(float64(forced), "moves")
	b.ReportMetric(float64(len(p.Moves)-forced), "balance-moves")
	reportPlan(b, p)
}

// BenchmarkReplanNoChange: the steady state, re-planning an unchanged cluster.
func BenchmarkReplanNoChange(b *testing.B) {
	in := benchWorkload.input(1)
	in.Current = mustCompute(b, in).Assignments
	var p Plan
	for b.Loop() {
		p = mustCompute(b, in)
	}
	if len(p.Moves) != 0 {
		b.Fatalf("%d moves", len(p.Moves))
	}
	reportPlan(b, p)
}

// reportSteady reports the balance once every window open at Now has closed
// (horizon positions from 80 on), measured by the independent model in
// check_test.go. From scratch at a random Now, the windows already open are
// all handed out late, with their work squeezed into what is left of them;
// that crush saturates every node for a few epochs and is what the plan-wide
// figure shows, so it says nothing about balance.
func reportSteady(b *testing.B, in Input, p Plan) {
	peak, lower := balance(in, p.Assignments, WindowEpochs+ChallengeLookback)
	b.ReportMetric(peak/lower, "steady-peak/lowerbound")
	b.ReportMetric(lower, "steady-lowerbound")
}

func reportPlan(b *testing.B, p Plan) {
	b.ReportMetric(p.PeakUtilization/p.LowerBound, "peak/lowerbound")
	b.ReportMetric(p.LowerBound, "lowerbound")
	b.ReportMetric(float64(len(p.Unplaced)), "unplaced")
}
