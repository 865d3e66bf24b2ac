package schedule

import "slices"

// Both steps here move deadlines that already have a fitting owner, so they
// only touch deadlines whose proving window lies wholly ahead, starting at
// least Config.MoveMargin epochs from now: an owner that is about to prove,
// or proving, is never disturbed. Such a deadline's demand is one full
// window, a single segment of its shape.

// makeRoomTries bounds the deadlines makeRoom tries to move for one
// unplaced deadline, so that a cluster that really is full costs little.
const makeRoomTries = 2000

// maxStuck bounds the nodes one plan sets aside as unable to shed load at
// their peak: each costs a search of every destination and chain, and
// the next plan, 2 seconds later, goes on from where this one stopped.
const maxStuck = 16

// movable reports whether it may move for balance or to make room.
func (p *planner) movable(it *item) bool {
	if it.owner < 0 || it.parts == 0 || it.shape.n != 1 || it.inst.from < 0 {
		return false
	}
	// A deadline placed by this plan has no owner at work yet, so it may
	// move again at once, unless its window is open.
	return it.state == placed || (it.state == kept && it.inst.from >= int32(p.cfg.MoveMargin))
}

// makeRoom places x, which no node has room for, by moving one movable
// deadline off a node where x then fits to any node with room for it. Greedy
// placement in window order can leave a deadline out while the cluster has
// room, spread in slivers over many nodes; one move usually gathers enough.
// It reports whether x was placed.
func (p *planner) makeRoom(x *item, s shape) bool {
	tries := makeRoomTries
	nodes := slices.Clone(p.elig)
	for _, n := range nodes {
		for _, yi := range p.blocking(n, s) {
			if tries--; tries < 0 {
				return false
			}
			if p.swapOut(x, s, n, &p.items[yi]) {
				return true
			}
		}
	}
	return false
}

// blocking lists the movable deadlines on node n whose window overlaps s.
func (p *planner) blocking(n int32, s shape) []int32 {
	var out []int32
	for _, yi := range p.nodes[n].owned {
		y := &p.items[yi]
		if !p.movable(y) {
			continue
		}
		g := y.shape.seg[0]
		for _, h := range s.seg[:s.n] {
			if g.from < h.to && h.from < g.to {
				out = append(out, yi)
				break
			}
		}
	}
	return out
}

// swapOut tries to move y off node n so that x fits there, and y elsewhere.
// On failure everything is as before.
func (p *planner) swapOut(x *item, s shape, n int32, y *item) bool {
	state, since, why := y.state, y.since, y.reason
	p.unassign(y)
	if ns, ok := p.fitOn(x, s, n); ok {
		p.place(x, n, ns)
		if m, _ := p.search(y.key, int(y.parts), y.shape); m >= 0 {
			p.assign(y, m, y.shape, placed)
			if state == kept {
				y.reason = rMakeRoom
			}
			return true
		}
		p.unassign(x)
	}
	p.assign(y, n, y.shape, state)
	y.since, y.reason = since, why
	return false
}

// fitOn returns the shape x would have on node n, if it fits there.
func (p *planner) fitOn(x *item, s shape, n int32) (shape, bool) {
	parts := int(x.parts)
	if s.n == 2 { // an open window
		spans, ok := p.prepOpen(parts, s)
		if !ok {
			return s, false
		}
		_, _, ns, ok := p.openOn(n, s, spans)
		return ns, ok
	}
	return s, p.fitsOn(n, parts, s)
}

// rebalance moves deadlines off the busiest node while that helps, so that
// the load stays close to the lower bound as nodes come and go and sticky
// owners pile up. The lower bound here is that of the windows that may
// move: the highest total demand at any position from MoveMargin on, over
// all eligible GPUs. Hysteresis keeps it from churning: it starts only when
// the busiest node's peak share is above (1+slack) times that bound, and
// stops at (1+slack/2). Each move lowers the busiest node's peak and puts the
// deadline where the resulting peak is lower still, so moves never undo one
// another. Moving a deadline this plan placed anyway costs nothing; moving a
// kept one counts towards RebalanceMoves.
func (p *planner) rebalance() {
	if p.cfg.RebalanceMoves < 0 || len(p.elig) < 2 {
		return
	}
	// Balance is judged from the first position where every window that
	// covers it may move (it starts MoveMargin or more ahead), so that the
	// busiest node can always try to shed something. Nearer positions were
	// judged here too, a little earlier, when they were further ahead.
	usable := p.cfg.usableTo() - p.cfg.usableFrom()
	from := int32(p.cfg.MoveMargin + usable - 1)
	bound := p.movableBound(from)
	if bound <= 0 {
		return
	}
	h, _, start := p.busiest(from)
	// Peaks are whole partitions: a node within one partition of the bound
	// is as balanced as it can be (on a devnet, where a partition takes a
	// millisecond, the slack alone is less than one).
	hn := &p.nodes[h]
	over := (start - bound) * float64(hn.cap)
	if start <= bound*(1+p.cfg.RebalanceSlack) || over <= float64(rate(1, hn.perPart, int32(usable))) {
		return
	}
	_, startNodes := p.atPeak(from)
	stop := bound * (1 + p.cfg.RebalanceSlack/2)
	moved := 0
	p.journal = p.journal[:0]
	// Each move lowers the busiest share or the number of (node, position)
	// pairs at it, so the loop ends before this bound; it runs to the end
	// when only deadlines placed by this plan move, so that planning the
	// result again finds nothing more to do.
	//
	// A node that cannot shed anything at its peak is set aside for this
	// plan and the next busiest tries: the cluster's peak falls only once
	// every node at it has shed, and with integral partitions many nodes
	// share the same peak (149 of 250 in the benchmark), so stopping at the
	// first that cannot left all the others there too.
	stuck, nstuck := make([]bool, len(p.nodes)), 0
	for i := 0; i < len(p.elig)*PeriodEpochs && nstuck < maxStuck; i++ {
		h, at, share := p.busiestExcept(from, stuck)
		if h < 0 || share <= stop {
			break
		}
		if !p.moveOff(h, at, moved < p.cfg.RebalanceMoves, &moved) {
			stuck[h] = true
			nstuck++
		}
	}
	// Moves that only thinned out the busiest moments of a node, without
	// lowering the busiest share or the number of nodes at it, are churn:
	// undo them all.
	if end, n := p.atPeak(from); end > start-1e-9 && n >= startNodes {
		p.undo()
	}
}

// atPeak returns the busiest share from position `from` on and how many
// eligible nodes reach it.
func (p *planner) atPeak(from int32) (share float64, nodes int) {
	h, at, share := p.busiest(from)
	peak, c := p.nodes[h].occ[at], p.nodes[h].cap
	for _, n := range p.elig {
		nd := &p.nodes[n]
		if !lessRatio(maxRange(nd.occ[from:]), nd.cap, peak, c) {
			nodes++
		}
	}
	return share, nodes
}

// undoEntry is a deadline's placement before a balancing move.
type undoEntry struct {
	idx    int32
	owner  int32
	state  itemState
	since  Epoch
	reason reason
}

func (p *planner) record(it *item) {
	p.journal = append(p.journal, undoEntry{idx: it.idx, owner: it.owner, state: it.state, since: it.since, reason: it.reason})
}

// undo reverts the moves in p.journal, newest first.
func (p *planner) undo() {
	for i := len(p.journal) - 1; i >= 0; i-- {
		e := p.journal[i]
		it := &p.items[e.idx]
		p.unassign(it)
		p.assign(it, e.owner, it.shape, e.state)
		it.since, it.reason = e.since, e.reason
	}
	p.journal = p.journal[:0]
}

// movableBound is the total demand at the busiest position from `from` on,
// as a fraction of all eligible GPUs.
func (p *planner) movableBound(from int32) float64 {
	var capacity int64
	total := make([]int64, PeriodEpochs-from)
	for _, n := range p.elig {
		nd := &p.nodes[n]
		capacity += nd.cap
		for t, v := range nd.occ[from:] {
			total[t] += v
		}
	}
	return float64(slices.Max(total)) / float64(capacity)
}

// busiest returns the eligible node with the highest peak share from
// position `from` on, the position of that peak and the share.
func (p *planner) busiest(from int32) (node, at int32, share float64) {
	return p.busiestExcept(from, nil)
}

// busiestExcept is busiest among the eligible nodes not set in skip; node
// is -1 if there are none.
func (p *planner) busiestExcept(from int32, skip []bool) (node, at int32, share float64) {
	var bestPeak, bestCap int64
	node = -1
	for _, n := range p.elig {
		if skip != nil && skip[n] {
			continue
		}
		nd := &p.nodes[n]
		if v := maxRange(nd.occ[from:]); node < 0 || lessRatio(bestPeak, bestCap, v, nd.cap) {
			node, bestPeak, bestCap = n, v, nd.cap
		}
	}
	if node < 0 {
		return -1, -1, 0
	}
	at = from + int32(slices.Index(p.nodes[node].occ[from:], bestPeak))
	return node, at, float64(bestPeak) / float64(bestCap)
}

// moveOff moves one movable deadline covering position at off node h to the
// node where the resulting peak share over its window is lowest, if that is
// below h's peak share now. Deadlines this plan kept may only move when
// mayMoveKept; moving one increments *moved. It reports whether it moved one.
func (p *planner) moveOff(h, at int32, mayMoveKept bool, moved *int) bool {
	hn := &p.nodes[h]
	peakH, capH := hn.occ[at], hn.cap
	var ys []int32
	for _, yi := range hn.owned {
		y := &p.items[yi]
		if g := y.shape.seg[0]; p.movable(y) && g.from <= at && at < g.to && (y.state == placed || mayMoveKept) {
			ys = append(ys, yi)
		}
	}
	// The biggest first: fewest moves.
	slices.SortFunc(ys, func(a, b int32) int { return int(p.items[b].parts - p.items[a].parts) })
	for _, yi := range ys {
		y := &p.items[yi]
		m := p.bestDestination(y, h, peakH, capH)
		if m < 0 {
			continue
		}
		p.moveTo(y, m, moved)
		return true
	}
	for _, yi := range ys {
		if p.moveChain(&p.items[yi], h, peakH, capH, mayMoveKept, moved) {
			return true
		}
	}
	return false
}

// moveTo moves it to node m for balance; moving a kept deadline is counted
// in *moved.
func (p *planner) moveTo(it *item, m int32, moved *int) {
	p.record(it)
	if it.state == kept {
		it.reason = rRebalance
		*moved++
	}
	p.unassign(it)
	p.assign(it, m, it.shape, placed)
}

// bestDestination returns the eligible node other than h on which y fits
// and leaves the lowest peak share over y's window, provided that share is
// below peak/capacity; -1 if none.
func (p *planner) bestDestination(y *item, h int32, peak, capacity int64) int32 {
	g := y.shape.seg[0]
	best := int32(-1)
	var bestPeak, bestCap int64
	for _, m := range p.elig {
		nd := &p.nodes[m]
		if m == h || !p.fitsOn(m, int(y.parts), y.shape) {
			continue
		}
		v := maxRange(nd.occ[g.from:g.to]) + rate(int(y.parts), nd.perPart, g.span)
		if !lessRatio(v, nd.cap, peak, capacity) {
			continue
		}
		if best < 0 || lessRatio(v, nd.cap, bestPeak, bestCap) ||
			(!lessRatio(bestPeak, bestCap, v, nd.cap) && p.tieBreak(y.key, y.parts, m, best)) {
			best, bestPeak, bestCap = m, v, nd.cap
		}
	}
	return best
}

// chainTries bounds the intermediate nodes moveChain tries per deadline.
const chainTries = 64

// moveChain moves y off h to a node m that then reaches h's peak share,
// and one deadline z off m to a third node (or h) so that m stays below it.
// Peaks are whole numbers of partitions: a node one partition above the
// rest often cannot shed it in one move, because every other node's window
// reaches the same share with it. The chain still lowers h's share at its
// peak and raises no node to it. It reports whether it moved; on failure
// everything is as before. z may move only if mayMoveKept or this plan
// placed it.
func (p *planner) moveChain(y *item, h int32, peak, capacity int64, mayMoveKept bool, moved *int) bool {
	g := y.shape.seg[0]
	type cand struct {
		m int32
		v int64
	}
	var cands []cand
	for _, m := range p.elig {
		nd := &p.nodes[m]
		if m != h && p.fitsOn(m, int(y.parts), y.shape) {
			cands = append(cands, cand{m, maxRange(nd.occ[g.from:g.to]) + rate(int(y.parts), nd.perPart, g.span)})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case lessRatio(a.v, p.nodes[a.m].cap, b.v, p.nodes[b.m].cap):
			return -1
		case lessRatio(b.v, p.nodes[b.m].cap, a.v, p.nodes[a.m].cap):
			return 1
		}
		return int(a.m - b.m)
	})
	state, since := y.state, y.since
	for _, c := range cands[:min(len(cands), chainTries)] {
		p.record(y)
		p.unassign(y)
		p.assign(y, c.m, y.shape, placed)
		if p.relieve(c.m, y, g, peak, capacity, mayMoveKept, moved) {
			if state == kept {
				y.reason = rRebalance
				*moved++
			}
			return true
		}
		p.journal = p.journal[:len(p.journal)-1]
		p.unassign(y)
		p.assign(y, h, y.shape, state)
		y.since = since
	}
	return false
}

// relieve moves one movable deadline other than y off node m, covering
// every position of window g where m is at or above peak/capacity, to the
// node that keeps it lowest below that share. It reports whether it moved one.
func (p *planner) relieve(m int32, y *item, g segment, peak, capacity int64, mayMoveKept bool, moved *int) bool {
	nd := &p.nodes[m]
	lo, hi := int32(-1), int32(-1) // first and last position at or above the share
	for t := g.from; t < g.to; t++ {
		if !lessRatio(nd.occ[t], nd.cap, peak, capacity) {
			if lo < 0 {
				lo = t
			}
			hi = t
		}
	}
	if lo < 0 {
		return true // y fits below the share after all
	}
	for _, zi := range nd.owned {
		z := &p.items[zi]
		zg := z.shape.seg[0]
		if z == y || !p.movable(z) || zg.from > lo || zg.to <= hi || !(z.state == placed || mayMoveKept) ||
			!p.belowWithout(m, g, z, peak, capacity) {
			continue
		}
		if k := p.bestDestination(z, m, peak, capacity); k >= 0 {
			p.moveTo(z, k, moved)
			return true
		}
	}
	return false
}

// belowWithout reports whether node m's share over window g is below
// peak/capacity once z is taken off it.
func (p *planner) belowWithout(m int32, g segment, z *item, peak, capacity int64) bool {
	nd := &p.nodes[m]
	zg := z.shape.seg[0]
	r := rate(int(z.parts), nd.perPart, zg.span)
	for t := g.from; t < g.to; t++ {
		v := nd.occ[t]
		if zg.from <= t && t < zg.to {
			v -= r
		}
		if !lessRatio(v, nd.cap, peak, capacity) {
			return false
		}
	}
	return true
}
