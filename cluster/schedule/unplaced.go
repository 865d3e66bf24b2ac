package schedule

import (
	"fmt"
	"slices"
	"time"
)

// pending is a deadline placement could not give a fitting owner.
type pending struct {
	idx    int32 // into planner.items
	reason UnplacedReason
	// nextPeriod: its window is open and lost; the owner is the next
	// period's (Since at this window's end).
	nextPeriod bool
}

func (p *planner) report(it *item, r UnplacedReason, nextPeriod bool) {
	p.pending = append(p.pending, pending{idx: it.idx, reason: r, nextPeriod: nextPeriod})
}

// retryUnplaced tries once more, after rebalancing moved deadlines around,
// to place each deadline left out for lack of capacity. Afterwards no
// deadline reported as no-capacity fits on any node but the one keeping it:
// what `vsm cluster schedule` says is then true of the plan it shows.
func (p *planner) retryUnplaced() {
	kept := p.pending[:0]
	for _, u := range p.pending {
		if u.reason != UnplacedNoCapacity || !p.retry(&p.items[u.idx]) {
			kept = append(kept, u)
		}
	}
	p.pending = kept
}

// retry places it afresh if some node now has room; otherwise it is left
// as it was.
func (p *planner) retry(it *item) bool {
	owner, s0, state, since := it.owner, it.shape, it.state, it.since
	if owner >= 0 {
		p.unassign(it)
	}
	s, _ := shapeFor(p.cfg, it.inst, p.now, p.now+p.cfg.StartDelay)
	var n int32
	if s.n == 2 {
		n, s, _ = p.searchOpen(it.key, int(it.parts), s)
	} else {
		n, _ = p.search(it.key, int(it.parts), s)
	}
	if n >= 0 {
		p.place(it, n, s)
		return true
	}
	if owner >= 0 {
		p.assign(it, owner, s0, state)
		it.since = since
	} else {
		it.state = unowned
	}
	return false
}

// explainUnplaced turns the pending list into Plan.Unplaced, saying for
// each why, and for a lack of capacity how busy the whole cluster is in
// that window: near 100% means more GPUs are needed; well below means the
// free GPU time is spread over nodes in pieces too small for this deadline.
func (p *planner) explainUnplaced() {
	var capacity int64
	for _, n := range p.elig {
		capacity += p.nodes[n].cap
	}
	for _, u := range p.pending {
		it := &p.items[u.idx]
		owner := ""
		if it.owner >= 0 {
			owner = p.nodes[it.owner].id
		}
		need := time.Duration(it.parts) * time.Duration(p.fastest()) * time.Millisecond
		left := Epoch(it.inst.to)
		var detail string
		switch u.reason {
		case UnplacedTooLate:
			detail = fmt.Sprintf("window closes in %d epochs (%s of proving time left); %d partitions need %s of GPU time and no live node can finish in time; this period's proof is lost",
				left, time.Duration(max(left, 0))*EpochDuration, it.parts, need)
		case UnplacedTooBig:
			detail = fmt.Sprintf("%d partitions need %s of GPU time; no live node can prove them inside a %d-epoch window even when idle",
				it.parts, need, p.cfg.UsableEpochs())
		default:
			detail = fmt.Sprintf("%d partitions need %s of GPU time; every live node that could prove them is full during this window (the cluster uses %s of its GPUs at the busiest moment of it)",
				it.parts, need, p.busyShare(it, capacity))
			if len(p.classes) == 0 {
				detail = "no node is alive, not draining and has GPUs"
			}
		}
		switch {
		case owner != "" && u.nextPeriod:
			if u.reason != UnplacedTooLate {
				detail += "; this period's proof is lost"
			}
			detail += "; from the next period it is owned by " + owner
		case owner != "":
			detail += "; kept by the previous owner " + owner + " though it does not fit"
		}
		p.unplaced = append(p.unplaced, Unplaced{Key: it.key, Reason: u.reason, Owner: owner, Detail: detail})
	}
	slices.SortFunc(p.unplaced, func(a, b Unplaced) int { return a.Key.compare(b.Key) })
}

// busyShare is the cluster's highest total demand during it's current
// window (what is left of it when open), as a percentage of all eligible GPUs.
func (p *planner) busyShare(it *item, capacity int64) string {
	if capacity == 0 {
		return "-"
	}
	from, to := max(it.inst.from, 0), min(it.inst.to, PeriodEpochs)
	var peak int64
	for t := from; t < to; t++ {
		var v int64
		for _, n := range p.elig {
			v += p.nodes[n].occ[t]
		}
		peak = max(peak, v)
	}
	return fmt.Sprintf("%.0f%%", 100*float64(peak)/float64(capacity))
}
