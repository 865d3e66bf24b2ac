package fsm

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ErrRejected marks a command that was valid to decode but is refused by
// the state (unknown miner, instance in use, ...). Every member refuses it
// identically, so the state stays the same everywhere.
var ErrRejected = errors.New("rejected")

func rejectf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, args...))
}

// recordsKept bounds deadline history per (miner, deadline): a week.
const recordsKept = 7

// loc is a stored sector location. Storage instances are referenced by
// index so a million sectors cost tens of bytes each, not two strings each.
type loc struct {
	sealed, cache uint32
	proof         uint8
	upgraded      bool
	commR         CommR
}

type minerState struct {
	info    Miner
	sectors *sectorTable
}

// state is the plain data behind FSM. It has no locking; FSM guards it.
type state struct {
	clusterID string
	miners    map[uint64]*minerState
	// storage is indexed by the number locations store. A removed instance
	// leaves a nil hole so indexes stay stable across the cluster.
	storage       []*StorageInstance
	storageByName map[string]uint32
	storageRefs   []uint64
	assignments   map[DeadlineKey]Assignment
	records       map[DeadlineKey][]DeadlineRecord
}

func newState() *state {
	return &state{
		miners:        map[uint64]*minerState{},
		storageByName: map[string]uint32{},
		assignments:   map[DeadlineKey]Assignment{},
		records:       map[DeadlineKey][]DeadlineRecord{},
	}
}

// clone is the point-in-time view a snapshot persists, so writes go on
// during Persist. Sector tables are frozen (their slabs copied, not their
// index maps): the copy can be written out, not queried.
func (s *state) clone() *state {
	c := &state{
		clusterID:     s.clusterID,
		miners:        make(map[uint64]*minerState, len(s.miners)),
		storage:       slices.Clone(s.storage),
		storageByName: maps.Clone(s.storageByName),
		storageRefs:   slices.Clone(s.storageRefs),
		assignments:   maps.Clone(s.assignments),
		records:       make(map[DeadlineKey][]DeadlineRecord, len(s.records)),
	}
	for id, m := range s.miners {
		c.miners[id] = &minerState{info: m.info, sectors: m.sectors.frozen()}
	}
	for k, r := range s.records {
		c.records[k] = slices.Clone(r)
	}
	return c
}

// apply executes one command. It returns what the client is told: a count
// of changed items, or an error wrapping ErrRejected.
func (s *state) apply(c Command) (int, error) {
	switch c := c.(type) {
	case SetClusterID:
		return s.setClusterID(c)
	case PutMiner:
		return s.putMiner(c.Miner)
	case RemoveMiner:
		return s.removeMiner(c)
	case PutStorage:
		return s.putStorage(c.Instance)
	case RemoveStorage:
		return s.removeStorage(c.Name)
	case PutLocations:
		return s.putLocations(c.Locations)
	case DeleteLocations:
		return s.deleteLocations(c.IDs), nil
	case SetAssignments:
		return s.setAssignments(c.Assignments)
	case RecordDeadline:
		return s.recordDeadline(c.Record)
	}
	return 0, fmt.Errorf("apply: unhandled command %T", c)
}

func (s *state) setClusterID(c SetClusterID) (int, error) {
	if c.ID == "" {
		return 0, rejectf("empty cluster id")
	}
	if s.clusterID != "" && s.clusterID != c.ID {
		return 0, rejectf("cluster id is already %s", s.clusterID)
	}
	s.clusterID = c.ID
	return 1, nil
}

func (s *state) putMiner(m Miner) (int, error) {
	if m.ID == 0 {
		return 0, rejectf("miner id 0 is not a miner actor")
	}
	if m.SectorSize == 0 || m.PartitionSize == 0 {
		return 0, rejectf("miner t0%d: sector size and partition size must be set", m.ID)
	}
	if ms, ok := s.miners[m.ID]; ok {
		ms.info = m
		return 1, nil
	}
	s.miners[m.ID] = &minerState{info: m, sectors: newSectorTable()}
	return 1, nil
}

func (s *state) removeMiner(c RemoveMiner) (int, error) {
	ms, ok := s.miners[c.ID]
	if !ok {
		return 0, rejectf("miner t0%d does not exist", c.ID)
	}
	if n := ms.sectors.len(); n > 0 && !c.Purge {
		return 0, rejectf("miner t0%d still has %d sector locations; delete them first or purge the miner", c.ID, n)
	}
	ms.sectors.each(func(_ uint64, l loc) {
		s.storageRefs[l.sealed]--
		s.storageRefs[l.cache]--
	})
	delete(s.miners, c.ID)
	for d := uint8(0); d < WdPoStDeadlines; d++ {
		k := DeadlineKey{Miner: c.ID, Deadline: d}
		delete(s.assignments, k)
		delete(s.records, k)
	}
	return 1, nil
}

func (s *state) putStorage(in StorageInstance) (int, error) {
	if in.Name == "" {
		return 0, rejectf("storage instance needs a name")
	}
	if idx, ok := s.storageByName[in.Name]; ok {
		cp := in
		s.storage[idx] = &cp
		return 1, nil
	}
	cp := in
	s.storageByName[in.Name] = uint32(len(s.storage))
	s.storage = append(s.storage, &cp)
	s.storageRefs = append(s.storageRefs, 0)
	return 1, nil
}

func (s *state) removeStorage(name string) (int, error) {
	idx, ok := s.storageByName[name]
	if !ok {
		return 0, rejectf("storage instance %q does not exist", name)
	}
	if refs := s.storageRefs[idx]; refs > 0 {
		return 0, rejectf("storage instance %q is referenced %d times by sector locations; move or delete them first", name, refs)
	}
	s.storage[idx] = nil
	delete(s.storageByName, name)
	return 1, nil
}

// putLocations validates the whole batch before changing anything, so a
// bad line in an import never leaves half a batch applied.
func (s *state) putLocations(locs []SectorLocation) (int, error) {
	stored := make([]loc, len(locs))
	for i, l := range locs {
		if _, ok := s.miners[l.Miner]; !ok {
			return 0, rejectf("location %s: miner t0%d does not exist; add it with 'vsm miner add'", l.SectorID, l.Miner)
		}
		sealed, ok := s.storageByName[l.Sealed]
		if !ok {
			return 0, rejectf("location %s: sealed storage instance %q does not exist; add it with 'vsm storage add'", l.SectorID, l.Sealed)
		}
		cache, ok := s.storageByName[l.Cache]
		if !ok {
			return 0, rejectf("location %s: cache storage instance %q does not exist; add it with 'vsm storage add'", l.SectorID, l.Cache)
		}
		stored[i] = loc{sealed: sealed, cache: cache, proof: l.SealProof, upgraded: l.Upgraded, commR: l.CommR}
	}
	for i, l := range locs {
		if old, had := s.miners[l.Miner].sectors.put(l.Number, stored[i]); had {
			s.storageRefs[old.sealed]--
			s.storageRefs[old.cache]--
		}
		s.storageRefs[stored[i].sealed]++
		s.storageRefs[stored[i].cache]++
	}
	return len(locs), nil
}

func (s *state) deleteLocations(ids []SectorID) int {
	deleted := 0
	for _, id := range ids {
		ms, ok := s.miners[id.Miner]
		if !ok {
			continue
		}
		old, ok := ms.sectors.delete(id.Number)
		if !ok {
			continue
		}
		s.storageRefs[old.sealed]--
		s.storageRefs[old.cache]--
		deleted++
	}
	return deleted
}

func (s *state) setAssignments(as []Assignment) (int, error) {
	for _, a := range as {
		if _, ok := s.miners[a.Miner]; !ok {
			return 0, rejectf("assignment of deadline %d: miner t0%d does not exist", a.Deadline, a.Miner)
		}
		if a.Deadline >= WdPoStDeadlines {
			return 0, rejectf("assignment of miner t0%d: deadline %d is not below %d", a.Miner, a.Deadline, WdPoStDeadlines)
		}
	}
	changed := 0
	for _, a := range as {
		old, had := s.assignments[a.DeadlineKey]
		if had && old.Node == a.Node {
			if old.Since != a.Since {
				// Same owner, new start epoch: not a hand-over, so the
				// generation stays and a running proof carries on.
				old.Since = a.Since
				s.assignments[a.DeadlineKey] = old
				changed++
			}
			continue
		}
		if !had && a.Node == "" {
			continue
		}
		changed++
		if a.Node == "" {
			// Keep the generation so a later owner still gets a larger one.
			old.Node = ""
			old.Since = a.Since
			old.Generation++
			s.assignments[a.DeadlineKey] = old
			continue
		}
		s.assignments[a.DeadlineKey] = Assignment{DeadlineKey: a.DeadlineKey, Node: a.Node, Generation: old.Generation + 1, Since: a.Since}
	}
	return changed, nil
}

func (s *state) recordDeadline(r DeadlineRecord) (int, error) {
	if _, ok := s.miners[r.Miner]; !ok {
		return 0, rejectf("deadline record: miner t0%d does not exist", r.Miner)
	}
	if r.Deadline >= WdPoStDeadlines {
		return 0, rejectf("deadline record: deadline %d is not below %d", r.Deadline, WdPoStDeadlines)
	}
	recs := s.records[r.DeadlineKey]
	i, found := slices.BinarySearchFunc(recs, r.PeriodStart, func(x DeadlineRecord, p int64) int {
		return cmp.Compare(x.PeriodStart, p)
	})
	if found {
		recs[i] = r
	} else {
		recs = slices.Insert(recs, i, r)
	}
	if len(recs) > recordsKept {
		recs = slices.Delete(recs, 0, len(recs)-recordsKept)
	}
	s.records[r.DeadlineKey] = recs
	return 1, nil
}

func (s *state) location(id SectorID) (SectorLocation, bool) {
	ms, ok := s.miners[id.Miner]
	if !ok {
		return SectorLocation{}, false
	}
	l, ok := ms.sectors.get(id.Number)
	if !ok {
		return SectorLocation{}, false
	}
	return s.expand(id, l), true
}

func (s *state) expand(id SectorID, l loc) SectorLocation {
	return SectorLocation{
		SectorID:  id,
		Sealed:    s.storage[l.sealed].Name,
		Cache:     s.storage[l.cache].Name,
		Upgraded:  l.upgraded,
		SealProof: l.proof,
		CommR:     l.commR,
	}
}
