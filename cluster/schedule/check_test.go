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

// window returns the proving window (prove-from, prove-by) of k's deadline
// that is current at in.Now or next, walking periods from PeriodStart.
func window(in Input, k Key) (from, by Epoch) {
	cfg := in.Config.withDefaults()
	for _, m := range in.Miners {
		if m.ID != k.Miner {
			continue
		}
		open := m.PeriodStart + Epoch(k.Deadline)*WindowEpochs
		open -= (open - in.Now + 3*PeriodEpochs) / PeriodEpochs * PeriodEpochs
		for open+WindowEpochs-cfg.SubmitMargin <= in.Now {
			open += PeriodEpochs
		}
		return open - ChallengeLookback + cfg.Confidence, open + WindowEpochs - cfg.SubmitMargin
	}
	panic(k)
}

func windowStart(in Input, k Key) Epoch { from, _ := window(in, k); return from }

func partitions(in Input, k Key) int {
	for _, m := range in.Miners {
		if m.ID == k.Miner {
			return m.Partitions[k.Deadline]
		}
	}
	panic(k)
}

// canProveAlone: an idle node proves parts partitions, one per GPU at a
// time, within epochs.
func canProveAlone(n Node, cfg Config, parts int, epochs Epoch) bool {
	pt := n.PartitionTime
	if pt == 0 {
		pt = cfg.DefaultPartitionTime
	}
	perGPU := (parts + n.GPUs - 1) / n.GPUs
	return time.Duration(perGPU)*pt <= time.Duration(epochs)*EpochDuration
}

func eligible(n Node) bool { return n.Alive && !n.Draining && n.GPUs > 0 }

// tooLate: k's window is open at Now and no eligible node, idle, could
// prove it in what is left after StartDelay.
func tooLate(in Input, k Key) bool {
	cfg := in.Config.withDefaults()
	from, by := window(in, k)
	if from >= in.Now {
		return false
	}
	for _, n := range in.Nodes {
		if eligible(n) && canProveAlone(n, cfg, partitions(in, k), by-in.Now-cfg.StartDelay) {
			return false
		}
	}
	return true
}

// coldDemand is k's demand per horizon position on node n when handed to
// it at Now: from the start of its window, or StartDelay after Now if it is
// open, to prove-by at a constant rate; and the next period's window.
func coldDemand(in Input, k Key, n Node) []float64 {
	cfg := in.Config.withDefaults()
	pt := n.PartitionTime
	if pt == 0 {
		pt = cfg.DefaultPartitionTime
	}
	out := make([]float64, PeriodEpochs)
	from, by := window(in, k)
	for f, b := from, by; f < in.Now+PeriodEpochs; f, b = f+PeriodEpochs, b+PeriodEpochs {
		f := max(f, in.Now+cfg.StartDelay)
		if f >= b {
			continue
		}
		g := float64(partitions(in, k)) * pt.Seconds() / (float64(b-f) * EpochDuration.Seconds())
		for t := f; t < min(b, in.Now+PeriodEpochs); t++ {
			out[t-in.Now] += g
		}
	}
	return out
}

// sufficient reports whether, handed out at Now, the total demand of every
// deadline that is not too late leaves every eligible node room for the
// largest one at every epoch: sum over nodes of (GPUs - largest demand) is
// at least the total demand. The nodes must share one partition time and
// be able to prove any deadline's full window alone.
func sufficient(in Input) bool {
	cfg := in.Config.withDefaults()
	total := make([]float64, PeriodEpochs)
	largest := 0.0
	var ref Node
	for _, n := range in.Nodes {
		if eligible(n) {
			ref = n
		}
	}
	for _, m := range in.Miners {
		for d := range Deadlines {
			k := Key{m.ID, uint8(d)}
			if m.Partitions[d] == 0 || tooLate(in, k) {
				continue
			}
			for t, v := range coldDemand(in, k, ref) {
				total[t] += v
				largest = max(largest, v)
			}
		}
	}
	room := 0.0
	for _, n := range in.Nodes {
		if !eligible(n) {
			continue
		}
		if n.PartitionTime != ref.PartitionTime {
			return false
		}
		for _, m := range in.Miners {
			for _, parts := range m.Partitions {
				if !canProveAlone(n, cfg, parts, cfg.UsableEpochs()) {
					return false
				}
			}
		}
		room += float64(n.GPUs) - largest
	}
	for _, v := range total {
		if v > room+1e-9 {
			return false
		}
	}
	return true
}

// unplacedWrong returns why u's reason is not true of plan p, or "". d is
// demand(in, p.Assignments).
func unplacedWrong(in Input, d map[string][]float64, u Unplaced) string {
	cfg := in.Config.withDefaults()
	parts := partitions(in, u.Key)
	switch u.Reason {
	case UnplacedTooLate:
		if !tooLate(in, u.Key) {
			return "an idle node could still finish it"
		}
	case UnplacedTooBig:
		for _, n := range in.Nodes {
			if eligible(n) && canProveAlone(n, cfg, parts, cfg.UsableEpochs()) {
				return "node " + n.ID + " could prove it alone"
			}
		}
	case UnplacedNoCapacity:
		if tooLate(in, u.Key) {
			return "it is too late, not short of capacity"
		}
		for _, n := range in.Nodes {
			if !eligible(n) || n.ID == u.Owner {
				continue
			}
			full := false
			for t, v := range coldDemand(in, u.Key, n) {
				full = full || d[n.ID][t]+v > float64(n.GPUs)-1e-5
			}
			if !full {
				return "node " + n.ID + " has room for it"
			}
		}
	default:
		return "unknown reason"
	}
	return ""
}
