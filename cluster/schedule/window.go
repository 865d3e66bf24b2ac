package schedule

// Time inside a plan is an offset from Input.Now: position p means epoch
// Now+p, and the plan looks at positions [0, PeriodEpochs), i.e. the next 24
// hours. Every deadline comes back exactly once per period, so this horizon
// holds each deadline's next proving window, and, for a window already open,
// also the start of the same deadline's window one period later. Working on a
// linear 24-hour horizon instead of a circular period means no window wraps
// around, and an open window's remaining time is represented exactly.

// micro is the fixed-point unit of GPU demand: one GPU busy = 1e6. Integers
// keep sums exact, so removing and re-adding the same work is lossless and
// plans are reproducible bit for bit.
const micro = 1_000_000

// epochMillis is one epoch in milliseconds, the unit of partition times.
const epochMillis = int64(EpochDuration / 1e6)

// instance is a deadline's next proving window, relative to Now.
type instance struct {
	open Epoch // absolute epoch at which the deadline opens
	from int32 // usable start, relative to Now; negative if already started
	to   int32 // usable end, relative to Now, in (0, PeriodEpochs]
}

// nextInstance returns the earliest window of deadline d whose usable end is
// after now.
func nextInstance(cfg Config, now, periodStart Epoch, d int) instance {
	off := mod(periodStart+Epoch(d)*WindowEpochs, PeriodEpochs)
	// Smallest open ≡ off (mod period) with open+usableTo > now.
	first := now - cfg.usableTo() + 1
	open := first + mod(off-first, PeriodEpochs)
	return instance{
		open: open,
		from: int32(open + cfg.usableFrom() - now),
		to:   int32(open + cfg.usableTo() - now),
	}
}

func mod(a, m Epoch) Epoch {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

// segment is a range of horizon positions [from, to) over which a deadline
// demands GPUs. span is the length of the proving time the work is spread
// over (the whole usable window, or what was left of it when the owner took
// over), which sets the demand rate; it can exceed to-from when the window is
// clipped by the horizon.
type segment struct {
	from, to int32
	span     int32
}

// shape is the demand of one deadline over the horizon: at most two segments
// (this window, and the next period's window if this one is already open).
// A zero-length segment is unused.
type shape struct {
	seg [2]segment
	n   int
}

func (s *shape) add(from, to, span int32) {
	if to > from {
		s.seg[s.n] = segment{from, to, span}
		s.n++
	}
}

// start is the first position the shape occupies, the sweep order of placement.
func (s shape) start() int32 {
	if s.n == 0 {
		return PeriodEpochs
	}
	return s.seg[0].from
}

// shapeFor returns a deadline's demand when its owner starts proving the
// current window at absolute epoch startAt (startAt <= open+usableFrom means
// from the beginning). ok is false when the current window is open and the
// owner starting at startAt would have no time left; the shape then holds
// only the next period's window.
func shapeFor(cfg Config, in instance, now, startAt Epoch) (s shape, ok bool) {
	full := int32(cfg.usableTo() - cfg.usableFrom())
	if in.from >= 0 {
		// Not open yet: the whole window lies ahead, inside the horizon.
		s.add(in.from, in.to, full)
		return s, true
	}
	start := int32(max(startAt-now, Epoch(in.from)))
	ok = start < in.to
	if ok {
		s.add(max(start, 0), in.to, in.to-start)
	}
	// The same deadline one period later starts before the horizon ends.
	s.add(in.from+PeriodEpochs, PeriodEpochs, full)
	return s, ok
}

// rate is the demand in micro-GPUs of partitions proved at perPart
// milliseconds each, spread over span epochs. Rounded up, so the fluid model
// never under-counts.
func rate(partitions int, perPartMillis int64, span int32) int64 {
	work := int64(partitions) * perPartMillis * micro
	den := int64(span) * epochMillis
	return (work + den - 1) / den
}

// fitsAlone reports whether a node with gpus GPUs can prove partitions within
// span epochs at all: a partition's SNARK runs on one GPU and cannot be split,
// so the busiest GPU proves ceil(partitions/gpus) of them back to back. The
// fluid model alone would miss this (3 partitions of 20 min on 2 GPUs do not
// fit in 30 minutes).
func fitsAlone(partitions, gpus int, perPartMillis int64, span int32) bool {
	if partitions == 0 {
		return true
	}
	perGPU := int64((partitions + gpus - 1) / gpus)
	return perGPU*perPartMillis <= int64(span)*epochMillis
}

// work is the GPU time of the shape in micro-GPU-epochs for partitions
// proved at perPartMillis each.
func (s shape) work(partitions int, perPartMillis int64) int64 {
	var w int64
	for _, g := range s.seg[:s.n] {
		w += rate(partitions, perPartMillis, g.span) * int64(g.to-g.from)
	}
	return w
}
