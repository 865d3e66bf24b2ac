package schedule

import (
	"testing"
	"time"
)

// demand recomputes, independently of the planner's horizon arithmetic, the
// GPU demand (in GPUs) per node and per epoch of [in.Now, in.Now+period)
// implied by a set of assignments: for every window of every assigned
// deadline, found by walking periods from PeriodStart, the owner proves from
// max(prove-from, since+StartDelay) to prove-by at a constant rate.
func demand(in Input, as []Assignment) map[string][]float64 {
	cfg := in.Config.withDefaults()
	per := map[string]time.Duration{}
	out := map[string][]float64{}
	for _, n := range in.Nodes {
		per[n.ID] = n.PartitionTime
		if n.PartitionTime == 0 {
			per[n.ID] = cfg.DefaultPartitionTime
		}
		out[n.ID] = make([]float64, PeriodEpochs)
	}
	miners := map[uint64]Miner{}
	for _, m := range in.Miners {
		miners[m.ID] = m
	}
	for _, a := range as {
		m := miners[a.Miner]
		parts := m.Partitions[a.Deadline]
		occ := out[a.Node]
		// Walk windows from well before Now to past the horizon.
		base := m.PeriodStart + Epoch(a.Deadline)*WindowEpochs
		base -= (base - in.Now + 3*PeriodEpochs) / PeriodEpochs * PeriodEpochs
		for open := base; open < in.Now+PeriodEpochs+PeriodEpochs; open += PeriodEpochs {
			from, by := open-ChallengeLookback+cfg.Confidence, open+WindowEpochs-cfg.SubmitMargin
			start := from
			if a.Since > 0 && a.Since+cfg.StartDelay > start {
				start = a.Since + cfg.StartDelay
			}
			if start >= by || by <= in.Now || start >= in.Now+PeriodEpochs {
				continue
			}
			gpus := float64(parts) * per[a.Node].Seconds() / (float64(by-start) * EpochDuration.Seconds())
			for t := max(start, in.Now); t < min(by, in.Now+PeriodEpochs); t++ {
				occ[t-in.Now] += gpus
			}
		}
	}
	return out
}

// balance returns the busiest node's peak demand relative to its GPUs and
// the lower bound (total demand at the busiest epoch over all GPUs of
// eligible nodes), both over horizon positions [from, PeriodEpochs).
func balance(in Input, as []Assignment, from int) (peak, lower float64) {
	d := demand(in, as)
	total := make([]float64, PeriodEpochs)
	gpus := 0
	for _, n := range in.Nodes {
		if !n.Alive || n.Draining || n.GPUs == 0 {
			continue
		}
		gpus += n.GPUs
		for t := from; t < PeriodEpochs; t++ {
			v := d[n.ID][t]
			total[t] += v
			peak = max(peak, v/float64(n.GPUs))
		}
	}
	for _, v := range total {
		lower = max(lower, v/float64(gpus))
	}
	return peak, lower
}

// checkPlan asserts the invariants every plan must hold: assignments sorted,
// only to live nodes, and no eligible node over capacity unless it keeps a
// deadline reported as not fitting.
func checkPlan(t *testing.T, in Input, p Plan) {
	t.Helper()
	nodes := map[string]Node{}
	for _, n := range in.Nodes {
		nodes[n.ID] = n
	}
	for i, a := range p.Assignments {
		if i > 0 && p.Assignments[i-1].Key.compare(a.Key) >= 0 {
			t.Fatalf("assignments not sorted at %v", a.Key)
		}
		if !nodes[a.Node].Alive {
			t.Fatalf("%v assigned to dead or unknown node %q", a.Key, a.Node)
		}
	}
	full := map[string]bool{} // nodes that keep an over-full deadline
	for _, u := range p.Unplaced {
		if u.Reason != UnplacedTooLate {
			full[u.Owner] = true
		}
	}
	for id, occ := range demand(in, p.Assignments) {
		n := nodes[id]
		if n.Draining || full[id] {
			continue
		}
		for t2, v := range occ {
			if v > float64(n.GPUs)+1e-6 {
				t.Fatalf("node %s over capacity at epoch %d: %.4f GPUs of %d", id, in.Now+Epoch(t2), v, n.GPUs)
			}
		}
	}
}
