package schedule

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Compute plans the owner of every deadline of in.Miners over in.Nodes.
//
// Decisions, in order:
//
//  1. Sticky. A deadline whose current owner is alive, not draining and
//     still has room for it keeps that owner. Current assignments are checked
//     in key order against the owner's 24-hour GPU demand; one that no longer
//     fits (the node lost GPUs, the deadline grew) is released.
//  2. Released deadlines (new, owner dead, gone, draining or full) are placed
//     in the order their proving windows start, larger first, windows
//     already open last and the one closing first first (see
//     placeReleased), each on the eligible node whose peak demand over that
//     window, counting this deadline, is the lowest fraction of its GPUs.
//     Ties go as tieBreak says. A node is eligible when it is alive, not
//     draining, and can prove the deadline inside the window at all.
//  3. A deadline that is already open goes to a new owner only if that owner
//     can still finish in what remains of the window after Config.StartDelay;
//     its demand is the work divided by that time, or by a shorter span
//     ending with the window (searchOpen). If no one can, a draining (still
//     alive) previous owner keeps it; otherwise this period's proof is
//     reported lost and the deadline is assigned for the next period.
//  4. A deadline no one has room for is placed by moving one other deadline
//     out of its way if that works (makeRoom); otherwise it stays with its
//     previous owner if that node is alive, and is reported in Plan.Unplaced
//     either way.
//  5. Rebalancing moves deadlines whose windows are far enough ahead off the
//     busiest node, within bounds (rebalance); then every deadline left out
//     for lack of capacity is tried once more (retryUnplaced).
//
// Compute returns an error only for malformed input (duplicate or empty ids,
// negative counts, invalid Config).
func Compute(in Input) (Plan, error) {
	cfg := in.Config.withDefaults()
	if err := cfg.validate(); err != nil {
		return Plan{}, err
	}
	p, err := newPlanner(in, cfg)
	if err != nil {
		return Plan{}, err
	}
	if err := p.buildItems(in); err != nil {
		return Plan{}, err
	}
	p.keepSticky()
	p.placeReleased()
	p.rebalance()
	p.retryUnplaced()
	p.explainUnplaced()
	return p.result(), nil
}

type nodeState struct {
	id       string
	gpus     int
	perPart  int64 // milliseconds per partition
	cap      int64 // micro-GPUs
	alive    bool
	draining bool
	assumed  bool // no measured speed: perPart is Config.DefaultPartitionTime
	eligible bool
	class    int32   // index into planner.classes, -1 if not eligible
	occ      []int64 // demand per horizon position, micro-GPUs; nil while empty
	// Owned work, for the summary and to break ties.
	deadlines, partitions int
	work                  int64   // micro-GPU-epochs over the horizon
	owned                 []int32 // indices into planner.items, any order
}

// class groups eligible nodes with the same GPU count and speed, so per
// deadline rates and feasibility are computed once per class, not per node.
type class struct {
	gpus    int
	perPart int64
	cap     int64
}

type itemState uint8

const (
	released itemState = iota
	kept
	placed   // moved to a new owner
	fallback // kept by its previous owner for lack of anywhere else
	unowned
)

// item is one (miner, deadline) being planned. Kept small: the benchmark
// plans 480,000 of them.
type item struct {
	key   Key
	idx   int32 // position in planner.items
	parts int32
	state itemState
	// reason is why a released item left its previous owner.
	reason reason
	inst   instance
	prev   int32 // current owner's node index, -1 if none or unknown
	owner  int32 // final owner's node index, -1 if none
	since  Epoch
	shape  shape // demand as placed, or as a new owner would have it
	// late: the window is open and a new owner can no longer prove it.
	late bool
}

// reason indexes moveReasons, to keep item small.
type reason uint8

const (
	rNew reason = iota
	rDead
	rGone
	rDrain
	rFull
	rRebalance
	rMakeRoom
)

var moveReasons = [...]MoveReason{rNew: MoveNew, rDead: MoveOwnerDead, rGone: MoveOwnerGone, rDrain: MoveDraining, rFull: MoveOverloaded,
	rRebalance: MoveRebalance, rMakeRoom: MoveMakeRoom}

type planner struct {
	cfg     Config
	now     Epoch
	nodes   []nodeState
	elig    []int32 // indices of eligible nodes, in id order
	byID    map[string]int32
	classes []class
	items   []item
	// Current entries that no longer name a plannable deadline.
	stale []Move
	// Owners in Current that are not in Nodes, by deadline.
	gone     map[Key]string
	pending  []pending   // deadlines without a fitting owner, until explainUnplaced
	journal  []undoEntry // rebalance's moves, to undo them
	unplaced []Unplaced

	heap    nodeHeap
	heapPos int32 // horizon position the heap keys were read at, -1 if stale
	popped  []int32
	rates   [][2]int64 // per class: rate of each segment of the current shape
	fits    []bool     // per class: can prove the current shape at all
	// openRates: per class, the rate over each of openSpans, -1 if it
	// cannot prove the deadline in that span.
	openRates [][openVariants]int64
}

func newPlanner(in Input, cfg Config) (*planner, error) {
	p := &planner{cfg: cfg, now: in.Now, byID: make(map[string]int32, len(in.Nodes)), gone: map[Key]string{}, heapPos: -1}
	p.nodes = make([]nodeState, 0, len(in.Nodes))
	for _, n := range in.Nodes {
		if n.ID == "" {
			return nil, fmt.Errorf("schedule: node with empty id")
		}
		if n.GPUs < 0 || n.PartitionTime < 0 {
			return nil, fmt.Errorf("schedule: node %s: negative GPUs or partition time", n.ID)
		}
		pt, assumed := n.PartitionTime, n.PartitionTime == 0
		if assumed {
			pt = cfg.DefaultPartitionTime
		}
		// Round up to whole milliseconds, never below one, so that demand is
		// not under-counted and a zero speed cannot make work free.
		ms := max(int64((pt+time.Millisecond-1)/time.Millisecond), 1)
		p.nodes = append(p.nodes, nodeState{
			id: n.ID, gpus: n.GPUs, perPart: ms, cap: int64(n.GPUs) * micro,
			alive: n.Alive, draining: n.Draining, assumed: assumed,
			eligible: n.Alive && !n.Draining && n.GPUs > 0,
			class:    -1,
		})
	}
	// Node index order is id order: every tie-break by index is by id.
	slices.SortFunc(p.nodes, func(a, b nodeState) int { return cmp.Compare(a.id, b.id) })
	var elig []int32
	for i := range p.nodes {
		n := &p.nodes[i]
		if i > 0 && p.nodes[i-1].id == n.id {
			return nil, fmt.Errorf("schedule: duplicate node id %q", n.id)
		}
		p.byID[n.id] = int32(i)
		if !n.eligible {
			continue
		}
		elig = append(elig, int32(i))
		p.elig = append(p.elig, int32(i))
		n.occ = make([]int64, PeriodEpochs)
		c := slices.IndexFunc(p.classes, func(c class) bool { return c.gpus == n.gpus && c.perPart == n.perPart })
		if c < 0 {
			c = len(p.classes)
			p.classes = append(p.classes, class{gpus: n.gpus, perPart: n.perPart, cap: n.cap})
		}
		n.class = int32(c)
	}
	p.rates = make([][2]int64, len(p.classes))
	p.fits = make([]bool, len(p.classes))
	p.openRates = make([][openVariants]int64, len(p.classes))
	p.heap = nodeHeap{
		key:  make([]int64, len(p.nodes)),
		cap:  make([]int64, len(p.nodes)),
		h:    elig,
		slot: make([]int32, len(p.nodes)),
	}
	for i := range p.nodes {
		p.heap.cap[i] = p.nodes[i].cap
		p.heap.slot[i] = -1
	}
	return p, nil
}

func (p *planner) buildItems(in Input) error {
	miners := slices.Clone(in.Miners)
	slices.SortFunc(miners, func(a, b Miner) int { return cmp.Compare(a.ID, b.ID) })
	current := slices.Clone(in.Current)
	slices.SortFunc(current, func(a, b Assignment) int { return a.Key.compare(b.Key) })
	for i := 1; i < len(current); i++ {
		if current[i].Key == current[i-1].Key {
			return fmt.Errorf("schedule: %v assigned twice in Current", current[i].Key)
		}
	}
	p.items = make([]item, 0, len(miners)*Deadlines)
	c := 0 // next unmatched entry of current; items are built in key order
	for i, m := range miners {
		if i > 0 && miners[i-1].ID == m.ID {
			return fmt.Errorf("schedule: duplicate miner f0%d", m.ID)
		}
		for d, parts := range m.Partitions {
			if parts < 0 || parts > math.MaxInt32 {
				return fmt.Errorf("schedule: miner f0%d deadline %d: %d partitions", m.ID, d, parts)
			}
			k := Key{Miner: m.ID, Deadline: uint8(d)}
			// Assignments that name no plannable deadline (miner gone,
			// deadline index out of range) are removed rather than silently
			// left in the replicated state.
			for ; c < len(current) && current[c].Key.compare(k) < 0; c++ {
				p.dropStale(current[c])
			}
			it := item{key: k, idx: int32(len(p.items)), parts: int32(parts), inst: nextInstance(p.cfg, p.now, m.PeriodStart, d), prev: -1, owner: -1}
			if c < len(current) && current[c].Key == k {
				o := current[c].Owner
				c++
				if o.Node != "" {
					it.since = o.Since
					if n, ok := p.byID[o.Node]; ok {
						it.prev = n
					} else {
						it.reason = rGone
						p.gone[k] = o.Node
					}
				}
			}
			p.items = append(p.items, it)
		}
	}
	for ; c < len(current); c++ {
		p.dropStale(current[c])
	}
	return nil
}

func (p *planner) dropStale(a Assignment) {
	if a.Node == "" {
		return
	}
	r := MoveMinerGone
	if a.Deadline >= Deadlines {
		r = MoveBadDeadline
	}
	p.stale = append(p.stale, Move{Key: a.Key, From: a.Node, Reason: r})
}

// startAt is the epoch from which an owner assigned at since proves the
// current window. Since <= 0 means long ago.
func (p *planner) startAt(since Epoch) Epoch {
	if since <= 0 {
		return math.MinInt64 / 2
	}
	return since + p.cfg.StartDelay
}

// keepSticky keeps every current assignment that is still valid and fits.
func (p *planner) keepSticky() {
	for i := range p.items {
		it := &p.items[i]
		if it.prev < 0 {
			continue // rNew, or rGone set by buildItems
		}
		n := &p.nodes[it.prev]
		switch {
		case !n.alive:
			it.reason = rDead
			continue
		case n.draining:
			it.reason = rDrain
			continue
		case !n.eligible: // alive with no GPUs
			it.reason = rFull
			continue
		}
		s, _ := shapeFor(p.cfg, it.inst, p.now, p.startAt(it.since))
		if p.fitsOn(it.prev, int(it.parts), s) {
			p.assign(it, it.prev, s, kept)
			continue
		}
		it.reason = rFull
	}
}

// fitsOn reports whether node n can take a deadline of the given shape.
func (p *planner) fitsOn(n int32, parts int, s shape) bool {
	nd := &p.nodes[n]
	for _, g := range s.seg[:s.n] {
		if !fitsAlone(parts, nd.gpus, nd.perPart, g.span) {
			return false
		}
		if maxRange(nd.occ[g.from:g.to])+rate(parts, nd.perPart, g.span) > nd.cap {
			return false
		}
	}
	return true
}

// assign records n as the owner of it with demand s.
func (p *planner) assign(it *item, n int32, s shape, st itemState) {
	nd := &p.nodes[n]
	if nd.occ == nil {
		nd.occ = make([]int64, PeriodEpochs)
	}
	for _, g := range s.seg[:s.n] {
		addRange(nd.occ[g.from:g.to], rate(int(it.parts), nd.perPart, g.span))
	}
	nd.deadlines++
	nd.partitions += int(it.parts)
	nd.work += s.work(int(it.parts), nd.perPart)
	nd.owned = append(nd.owned, it.idx)
	it.owner, it.shape, it.state = n, s, st
	if st == placed {
		it.since = p.now
	}
	p.fixHeap(n)
}

// unassign undoes assign: it is left released, with no owner.
func (p *planner) unassign(it *item) {
	n := it.owner
	nd := &p.nodes[n]
	s := it.shape
	for _, g := range s.seg[:s.n] {
		addRange(nd.occ[g.from:g.to], -rate(int(it.parts), nd.perPart, g.span))
	}
	nd.deadlines--
	nd.partitions -= int(it.parts)
	nd.work -= s.work(int(it.parts), nd.perPart)
	if i := slices.Index(nd.owned, it.idx); i >= 0 {
		nd.owned[i] = nd.owned[len(nd.owned)-1]
		nd.owned = nd.owned[:len(nd.owned)-1]
	}
	it.owner, it.state = -1, released
	p.fixHeap(n)
}

// fixHeap refreshes node n's key in the placement heap after its demand changed.
func (p *planner) fixHeap(n int32) {
	if p.heapPos >= 0 && p.heap.slot[n] >= 0 {
		p.heap.key[n] = p.nodes[n].occ[p.heapPos]
		p.heap.fix(n)
	}
}

// placeReleased places every released deadline (decisions 2-4 of Compute).
func (p *planner) placeReleased() {
	// Sweep in window order: then every deadline placed before this one
	// starts no later, so a node's demand over this window is usually highest
	// at its start, which is what the heap orders by, and the first node
	// popped is almost always the answer. Larger deadlines first at the same
	// start, as in longest-processing-time-first list scheduling; then key
	// order. The order is packed into one integer per item because sorting
	// 480,000 structs with a comparison function dominated the run time:
	// start (< 2^12) | inverted partitions (20 bits) | item index (32 bits).
	n := 0
	for i := range p.items {
		if p.items[i].state == released {
			n++
		}
	}
	todo := make([]uint64, 0, n)
	for i := range p.items {
		it := &p.items[i]
		if it.state != released {
			continue
		}
		s, ok := shapeFor(p.cfg, it.inst, p.now, p.now+p.cfg.StartDelay)
		it.shape, it.late = s, !ok && it.parts > 0
		inv := uint64(1<<20-1) - uint64(min(it.parts, 1<<20-1))
		start := uint64(s.start())
		if it.inst.from < 0 {
			// Windows already open go last. A new owner has only what is
			// left of them, so they need more GPUs per partition than any
			// window that has not opened yet; placing them first would let
			// them crowd out those easier windows, which is worse (a lost
			// proof either way, and the easy one was not late). After a cold
			// start this also lets searchOpen balance their next period
			// against everything else. Among them, the window closing
			// first goes first, as earliest-deadline-first would prove them:
			// it has the fewest ways to fit, and the later ones can start
			// their proving later (searchOpen).
			start = PeriodEpochs + uint64(max(it.inst.to, 0))
		}
		todo = append(todo, start<<52|inv<<32|uint64(i))
	}
	slices.Sort(todo)
	for _, t := range todo {
		it := &p.items[uint32(t)]
		p.placeOne(it)
	}
}

func (p *planner) placeOne(it *item) {
	parts := int(it.parts)
	s := it.shape
	inProgress := it.inst.from < 0
	var n int32 = -1
	tooBig := false
	switch {
	case it.late:
	case s.n == 2 && parts > 0:
		n, s, tooBig = p.searchOpen(it.key, parts, s)
	default:
		n, tooBig = p.search(it.key, parts, s)
	}
	if n < 0 && !it.late && !tooBig && parts > 0 && p.makeRoom(it, s) {
		return
	}
	if n >= 0 {
		p.place(it, n, s)
		return
	}
	if it.prev >= 0 && p.nodes[it.prev].alive {
		// Nowhere else to go, but the previous owner is still running: it
		// keeps the deadline rather than leaving it unowned.
		ps, _ := shapeFor(p.cfg, it.inst, p.now, p.startAt(it.since))
		p.assign(it, it.prev, ps, fallback)
		if inProgress && p.nodes[it.prev].draining {
			return // it is proving this window; nothing is lost
		}
		p.report(it, p.whyNot(it.late, tooBig), false)
		return
	}
	if inProgress {
		// This period's proof is lost (an empty deadline loses nothing).
		// Assign the next period's window, with Since at this window's end
		// so that the owner, and a re-plan, know it is not proving this one.
		var next shape
		next.add(it.inst.from+PeriodEpochs, PeriodEpochs, s.seg[s.n-1].span)
		n, nextTooBig := p.search(it.key, parts, next)
		if n >= 0 {
			p.assign(it, n, next, placed)
			it.since = p.now + Epoch(it.inst.to)
			if parts > 0 {
				// No idle node could finish it either (tooBig on what is
				// left of the window) is lateness, not a lack of capacity.
				r := UnplacedNoCapacity
				if it.late || tooBig {
					r = UnplacedTooLate
				}
				p.report(it, r, true)
			}
			return
		}
		it.state, it.owner = unowned, -1
		// This window is lost if it is late, or if no idle node could
		// prove what is left of it; the next period did not fit either.
		switch {
		case nextTooBig && len(p.classes) > 0:
			p.report(it, UnplacedTooBig, false)
		case it.late || tooBig:
			p.report(it, UnplacedTooLate, false)
		default:
			p.report(it, UnplacedNoCapacity, false)
		}
		return
	}
	it.state, it.owner = unowned, -1
	p.report(it, p.whyNot(it.late, tooBig), false)
}

// place makes n the new owner of it with demand s.
func (p *planner) place(it *item, n int32, s shape) {
	p.assign(it, n, s, placed)
	if start := p.now + Epoch(s.seg[0].to-s.seg[0].span); it.inst.from < 0 && start > p.now+p.cfg.StartDelay {
		// The owner counts its proving from a later start (see
		// searchOpen); Since says so, so that the next plan sees the
		// same demand.
		it.since = start - p.cfg.StartDelay
	}
}

func (p *planner) whyNot(late, tooBig bool) UnplacedReason {
	switch {
	case late:
		return UnplacedTooLate
	case tooBig && len(p.classes) > 0:
		return UnplacedTooBig
	}
	return UnplacedNoCapacity
}

// fastest is the lowest per-partition time among eligible nodes (ms).
func (p *planner) fastest() int64 {
	best := int64(0)
	for _, c := range p.classes {
		if best == 0 || c.perPart < best {
			best = c.perPart
		}
	}
	if best == 0 {
		best = int64(p.cfg.DefaultPartitionTime / time.Millisecond)
	}
	return best
}

// search returns the eligible node on which a deadline of the given shape
// leaves the lowest peak demand relative to capacity, or -1. tooBig is true
// when no eligible node could prove it even if idle.
//
// It is a best-first search over the heap of nodes ordered by demand at the
// shape's start: that demand plus the cheapest class's rate is a lower bound
// of any node's score, so the search stops as soon as the next node's bound
// cannot beat the best found. Popped nodes are pushed back afterwards.
func (p *planner) search(key Key, parts int, s shape) (best int32, tooBig bool) {
	pos := s.start()
	if pos != p.heapPos {
		for _, n := range p.heap.h {
			p.heap.key[n] = p.nodes[n].occ[pos]
		}
		p.heap.init()
		p.heapPos = pos
	}
	minRatio := math.Inf(1)
	for c, cl := range p.classes {
		ok := true
		for i, g := range s.seg[:s.n] {
			p.rates[c][i] = rate(parts, cl.perPart, g.span)
			ok = ok && fitsAlone(parts, cl.gpus, cl.perPart, g.span) && p.rates[c][i] <= cl.cap
		}
		p.fits[c] = ok
		if ok {
			minRatio = min(minRatio, float64(p.rates[c][0])/float64(cl.cap))
		}
	}
	if math.IsInf(minRatio, 1) {
		return -1, true
	}
	best = -1
	var bestPeak, bestCap int64
	p.popped = p.popped[:0]
	for len(p.heap.h) > 0 {
		n := p.heap.top()
		bound := float64(p.heap.key[n])/float64(p.heap.cap[n]) + minRatio
		if bound > 1+1e-9 {
			break // no remaining node has room
		}
		if best >= 0 && bound > float64(bestPeak)/float64(bestCap)+1e-12 {
			break // no remaining node can do better or tie
		}
		p.heap.pop()
		p.popped = append(p.popped, n)
		nd := &p.nodes[n]
		if !p.fits[nd.class] {
			continue
		}
		peak := int64(0)
		for i, g := range s.seg[:s.n] {
			peak = max(peak, maxRange(nd.occ[g.from:g.to])+p.rates[nd.class][i])
		}
		if peak > nd.cap {
			continue
		}
		if best < 0 || lessRatio(peak, nd.cap, bestPeak, bestCap) ||
			(!lessRatio(bestPeak, bestCap, peak, nd.cap) && p.tieBreak(key, int32(parts), n, best)) {
			best, bestPeak, bestCap = n, peak, nd.cap
		}
	}
	for _, n := range p.popped {
		p.heap.push(n)
	}
	return best, false
}

// searchOpen places a deadline whose window is already open: s.seg[0] is
// what is left of this window (squeezed, high demand) and s.seg[1] the start
// of the next period's window at the end of the horizon. The owner chosen
// now keeps the deadline in every later period, so among the nodes that can
// still prove this window it picks the one with the lowest demand in the
// next period's window (then the lowest in this one, then as tieBreak says).
// Ranking by this window's crush instead, as search would, leaves the
// long-term load lopsided after a cold start, when every open window is
// handed out at once. The heap's lower bound does not apply to this ranking,
// so it scans every node; open windows are few (at most about 1.3 per miner,
// at a cold start).
//
// What is left of the window need not be used from its first epoch: the
// owner may count its proving from a later start, over a shorter span at a
// higher rate (see openSpans). Spreading every open window over all of its
// remaining time, as the steady state does, made them all overlap at the
// start of the horizon, and a cold start found the cluster over capacity
// there although proving the most urgent first fits: 491 of the benchmark's
// open windows were left unproved that way. The shape returned is the one to
// assign, with seg[0] starting where the owner counts its proving from.
func (p *planner) searchOpen(key Key, parts int, s shape) (best int32, bs shape, tooBig bool) {
	spans, ok := p.prepOpen(parts, s)
	if !ok {
		return -1, s, true
	}
	best, bs = -1, s
	var bestNext, bestNow, bestCap int64
	for _, n := range p.heap.h { // every eligible node, in no particular order
		next, now, ns, ok := p.openOn(n, s, spans)
		if !ok {
			continue
		}
		c := p.nodes[n].cap
		better := best < 0 || lessRatio(next, c, bestNext, bestCap)
		if !better && !lessRatio(bestNext, bestCap, next, c) { // equal next
			better = lessRatio(now, c, bestNow, bestCap) ||
				(!lessRatio(bestNow, bestCap, now, c) && p.tieBreak(key, int32(parts), n, best))
		}
		if better {
			best, bestNext, bestNow, bestCap, bs = n, next, now, c, ns
		}
	}
	return best, bs, false
}

// prepOpen computes, per class, the rates of an open window's shape s over
// each of its openSpans (p.rates[c][1], p.openRates[c]) and whether the
// class can prove it at all (p.fits). ok is false when no class can.
func (p *planner) prepOpen(parts int, s shape) (spans []segment, ok bool) {
	spans = openSpans(s.seg[0], p.minSpan(parts))
	for c, cl := range p.classes {
		p.rates[c][1] = rate(parts, cl.perPart, s.seg[1].span)
		next := p.rates[c][1] <= cl.cap && fitsAlone(parts, cl.gpus, cl.perPart, s.seg[1].span)
		p.fits[c] = false
		for v, g := range spans {
			p.openRates[c][v] = -1
			if next && fitsAlone(parts, cl.gpus, cl.perPart, g.span) {
				if r := rate(parts, cl.perPart, g.span); r <= cl.cap {
					p.openRates[c][v] = r
					p.fits[c] = true
				}
			}
		}
		ok = ok || p.fits[c]
	}
	return spans, ok
}

// openOn reports whether node n has room for an open window of shape s
// (after prepOpen), with its peak demand in the next period's window and in
// this one, and the shape to assign: the longest of spans that fits, for
// the lowest rate and the most slack.
func (p *planner) openOn(n int32, s shape, spans []segment) (next, now int64, out shape, ok bool) {
	nd := &p.nodes[n]
	if !p.fits[nd.class] {
		return 0, 0, s, false
	}
	next = maxRange(nd.occ[s.seg[1].from:s.seg[1].to]) + p.rates[nd.class][1]
	if next > nd.cap {
		return 0, 0, s, false
	}
	for v, g := range spans {
		r := p.openRates[nd.class][v]
		if r < 0 {
			continue
		}
		if peak := maxRange(nd.occ[g.from:g.to]) + r; peak <= nd.cap {
			s.seg[0] = g
			return next, peak, s, true
		}
	}
	return 0, 0, s, false
}

// openVariants is how many later starts openSpans offers for an open window.
const openVariants = 6

// openSpans returns the spans an owner taking over an open window may count
// its proving over, longest first: from g.from, and from evenly spaced later
// starts down to the shortest span min that can still prove it. All end at
// g.to. A later start packs like earliest-deadline-first: windows that close
// soon take the GPUs now, those that close later take them after.
func openSpans(g segment, min int32) []segment {
	out := make([]segment, 0, openVariants)
	out = append(out, g)
	room := g.span - min // how much later proving may start
	if room <= 0 {
		return out
	}
	for v := int32(1); v < openVariants; v++ {
		late := room * v / (openVariants - 1)
		from := g.to - (g.span - late)
		if from <= g.from {
			continue
		}
		out = append(out, segment{from: from, to: g.to, span: g.span - late})
	}
	return out
}

// minSpan is the shortest span in epochs in which the fastest, widest
// eligible class could prove parts partitions on its own.
func (p *planner) minSpan(parts int) int32 {
	best := int32(math.MaxInt32)
	for _, c := range p.classes {
		perGPU := int64((parts + c.gpus - 1) / c.gpus)
		e := (perGPU*c.perPart + epochMillis - 1) / epochMillis
		best = min(best, int32(min(e, math.MaxInt32)))
	}
	return max(best, 1)
}

func maxRange(a []int64) int64 {
	m := int64(0)
	for _, v := range a {
		m = max(m, v)
	}
	return m
}

func addRange(a []int64, v int64) {
	for i := range a {
		a[i] += v
	}
}

func (p *planner) result() Plan {
	out := Plan{
		Now:         p.now,
		Assignments: make([]Assignment, 0, len(p.items)),
		Unplaced:    p.unplaced,
	}
	moves := len(p.stale)
	for i := range p.items {
		if it := &p.items[i]; it.owner != it.prev || it.reason == rGone {
			moves++
		}
	}
	out.Moves = make([]Move, 0, moves)
	out.Moves = append(out.Moves, p.stale...)
	fast := p.fastest()
	diff := make([]int64, PeriodEpochs+1)
	for i := range p.items {
		it := &p.items[i]
		to := ""
		if it.owner >= 0 {
			to = p.nodes[it.owner].id
			out.Assignments = append(out.Assignments, Assignment{Key: it.key, Owner: Owner{Node: to, Since: it.since}})
		}
		from := ""
		switch {
		case it.prev >= 0:
			from = p.nodes[it.prev].id
		case it.reason == rGone:
			from = p.gone[it.key]
		}
		if from != to {
			r := moveReasons[it.reason]
			if to == "" {
				r = MoveUnplaceable
			}
			out.Moves = append(out.Moves, Move{Key: it.key, From: from, To: to, Reason: r})
		}
		for _, g := range it.shape.seg[:it.shape.n] {
			r := rate(int(it.parts), fast, g.span)
			diff[g.from] += r
			diff[g.to] -= r
		}
	}
	slices.SortFunc(out.Moves, func(a, b Move) int { return a.Key.compare(b.Key) })
	slices.SortFunc(out.Unplaced, func(a, b Unplaced) int { return a.Key.compare(b.Key) })

	var totalCap, run, peakTotal int64
	for _, d := range diff[:PeriodEpochs] {
		run += d
		peakTotal = max(peakTotal, run)
	}
	out.Nodes = make([]NodeLoad, len(p.nodes))
	for i := range p.nodes {
		nd := &p.nodes[i]
		l := NodeLoad{ID: nd.id, GPUs: nd.gpus, Eligible: nd.eligible, Deadlines: nd.deadlines, Partitions: nd.partitions, PeakAt: p.now,
			PartitionTime: time.Duration(nd.perPart) * time.Millisecond, SpeedAssumed: nd.assumed}
		var sum, peak int64
		for t, v := range nd.occ {
			sum += v
			if v > peak {
				peak, l.PeakAt = v, p.now+Epoch(t)
			}
		}
		l.Peak = float64(peak) / micro
		l.GPUHours = float64(sum) / micro * EpochDuration.Hours()
		if nd.eligible {
			totalCap += nd.cap
			out.PeakUtilization = max(out.PeakUtilization, l.Utilization())
		}
		out.Nodes[i] = l
	}
	if totalCap > 0 {
		out.LowerBound = float64(peakTotal) / float64(totalCap)
	}
	return out
}
