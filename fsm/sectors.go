package fsm

import "slices"

// sectorTable holds one miner's locations. A map from sector number to the
// location itself cost 134 bytes a sector (a 56-byte slot in a map whose
// tables are often half empty), and a snapshot had to clone that map whole
// while writes went on. Here the locations sit in a slab, one 56-byte entry
// each, and the map holds only a 4-byte slot number: about 85 bytes a
// sector, and a snapshot copies the slab alone (a memcpy, 56 bytes a
// sector) and never the map.
type sectorTable struct {
	index map[uint64]uint32 // sector number -> slot; nil in a frozen copy
	slab  []sectorEntry
	free  []uint32 // slots of deleted sectors, reused first
}

type sectorEntry struct {
	number uint64
	loc
	used bool
}

// compactMin is the slab size below which freed slots are never compacted.
const compactMin = 1024

func newSectorTable() *sectorTable {
	return &sectorTable{index: map[uint64]uint32{}}
}

func (t *sectorTable) len() int { return len(t.index) }

func (t *sectorTable) get(number uint64) (loc, bool) {
	slot, ok := t.index[number]
	if !ok {
		return loc{}, false
	}
	return t.slab[slot].loc, true
}

// put stores l and returns the location it replaced, if any.
func (t *sectorTable) put(number uint64, l loc) (old loc, had bool) {
	if slot, ok := t.index[number]; ok {
		old = t.slab[slot].loc
		t.slab[slot].loc = l
		return old, true
	}
	e := sectorEntry{number: number, loc: l, used: true}
	if n := len(t.free); n > 0 {
		slot := t.free[n-1]
		t.free = t.free[:n-1]
		t.slab[slot] = e
		t.index[number] = slot
		return loc{}, false
	}
	t.index[number] = uint32(len(t.slab))
	t.slab = append(t.slab, e)
	return loc{}, false
}

// delete removes a location and returns it. Once most of the slab is free
// it is compacted, so deleting sectors gives their memory back.
func (t *sectorTable) delete(number uint64) (loc, bool) {
	slot, ok := t.index[number]
	if !ok {
		return loc{}, false
	}
	old := t.slab[slot].loc
	t.slab[slot] = sectorEntry{}
	delete(t.index, number)
	t.free = append(t.free, slot)
	if len(t.slab) >= compactMin && len(t.free) > len(t.slab)/2 {
		t.compact()
	}
	return old, true
}

func (t *sectorTable) compact() {
	slab := make([]sectorEntry, 0, len(t.index))
	index := make(map[uint64]uint32, len(t.index))
	for _, e := range t.slab {
		if e.used {
			index[e.number] = uint32(len(slab))
			slab = append(slab, e)
		}
	}
	t.slab, t.index, t.free = slab, index, nil
}

// each calls fn for every location, in no particular order.
func (t *sectorTable) each(fn func(number uint64, l loc)) {
	for i := range t.slab {
		if e := &t.slab[i]; e.used {
			fn(e.number, e.loc)
		}
	}
}

// frozen is a point-in-time copy for a snapshot: only each works on it.
func (t *sectorTable) frozen() *sectorTable {
	return &sectorTable{slab: slices.Clone(t.slab)}
}
