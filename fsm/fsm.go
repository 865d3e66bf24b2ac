package fsm

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Result is what Apply returns to the writer through raft's ApplyFuture.
type Result struct {
	Changed int
	Err     error
}

// FSM is vsm's raft.FSM. Reads are served from it directly on every member.
type FSM struct {
	mu sync.RWMutex
	st *state
	// fatal is called when the log holds a command this version cannot
	// apply. Continuing would silently diverge from the other members.
	fatal func(error)
	// fenced counts commands refused because the term they were decided
	// in is not the term of the entry that carries them.
	fenced atomic.Uint64
}

// New returns an empty FSM. onFatal is called (then Apply panics if it
// returns) for an unknown command without the IgnoreIfUnknown bit.
func New(onFatal func(error)) *FSM {
	return &FSM{st: newState(), fatal: onFatal}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := Decode(l.Data)
	if err != nil {
		err = fmt.Errorf("raft log index %d: %w", l.Index, err)
		if f.fatal != nil {
			f.fatal(err)
		}
		panic(err)
	}
	if c == nil { // unknown but marked optional
		return Result{}
	}
	if err := f.fence(c, l); err != nil {
		return Result{Err: err}
	}
	return f.ApplyCommand(c)
}

// ErrFenced marks a command decided by a leader in another term than the
// entry carrying it: a deposed leader's late write.
var ErrFenced = fmt.Errorf("%w: stale leader", ErrRejected)

// fence refuses a fenced command whose decided term is not the term of its
// log entry. Raft gives an entry the term of the leader that appended it,
// and that never changes, so every member decides alike. Why equality is
// the right test:
//   - a deposed leader's write that reaches the log through the new leader
//     (forwarded, or retried after "not leader") is appended in a later
//     term than it was decided in: refused;
//   - a deposed leader's own entry, appended in its term but never
//     replicated to a majority, is overwritten by the new leader and never
//     applied anywhere: raft itself drops it;
//   - the same entry, if it did reach enough members to be kept, carries
//     its original term and was decided by the legitimate leader of that
//     term before any later leader's barrier, so it is applied and the new
//     leader (which plans only after its barrier) sees it, like any write
//     committed just before an election.
func (f *FSM) fence(c Command, l *raft.Log) error {
	sa, ok := c.(SetAssignments)
	if !ok || sa.Term == 0 || sa.Term == l.Term {
		return nil
	}
	f.fenced.Add(1)
	return fmt.Errorf("%w: %d assignments decided in raft term %d arrived in an entry of term %d (index %d); the leader that decided them was deposed, so they are ignored",
		ErrFenced, len(sa.Assignments), sa.Term, l.Term, l.Index)
}

// Fenced is how many commands this member refused as stale leader writes
// since it started.
func (f *FSM) Fenced() uint64 { return f.fenced.Load() }

// ApplyCommand applies c without raft. Raft calls it through Apply; tests
// and benchmarks call it directly.
func (f *FSM) ApplyCommand(c Command) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.st.apply(c)
	return Result{Changed: n, Err: err}
}

// Snapshot implements raft.FSM: a cheap point-in-time copy; Persist does
// the I/O without holding the lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &snapshot{st: f.st.clone()}, nil
}

// Restore implements raft.FSM. The new state is built aside and swapped in
// whole, so a bad snapshot leaves the current state untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

// WriteTo writes a snapshot of the current state to w (operator backups,
// benchmarks). It is the same format raft snapshots use.
func (f *FSM) WriteTo(w io.Writer) (int64, error) {
	f.mu.RLock()
	st := f.st.clone()
	f.mu.RUnlock()
	return writeSnapshot(w, st)
}

// ClusterID is the id made at bootstrap, or "" before it.
func (f *FSM) ClusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.clusterID
}

// Miner returns one miner.
func (f *FSM) Miner(id uint64) (Miner, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.st.miners[id]
	if !ok {
		return Miner{}, false
	}
	return m.info, true
}

// MinerSummary is a miner with its sector count.
type MinerSummary struct {
	Miner
	Sectors int `json:"sectors"`
}

// Miners lists miners by id.
func (f *FSM) Miners() []MinerSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]MinerSummary, 0, len(f.st.miners))
	for _, m := range f.st.miners {
		out = append(out, MinerSummary{Miner: m.info, Sectors: m.sectors.len()})
	}
	slices.SortFunc(out, func(a, b MinerSummary) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// StorageSummary is a storage instance with how many sector files refer to it.
type StorageSummary struct {
	StorageInstance
	References uint64 `json:"references"`
}

// StorageInstances lists storage instances by name.
func (f *FSM) StorageInstances() []StorageSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]StorageSummary, 0, len(f.st.storageByName))
	for _, idx := range f.st.storageByName {
		out = append(out, StorageSummary{StorageInstance: *f.st.storage[idx], References: f.st.storageRefs[idx]})
	}
	slices.SortFunc(out, func(a, b StorageSummary) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Storage returns one storage instance.
func (f *FSM) Storage(name string) (StorageInstance, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	idx, ok := f.st.storageByName[name]
	if !ok {
		return StorageInstance{}, false
	}
	return *f.st.storage[idx], true
}

// Location is the PoSter's hot read: one map access per sector.
func (f *FSM) Location(id SectorID) (SectorLocation, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.location(id)
}

// Locations lists a miner's locations in sector-number order, from sector
// number `from` on, at most limit (0: all). Pages chain with from = last+1.
func (f *FSM) Locations(miner uint64, from uint64, limit int) []SectorLocation {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ms, ok := f.st.miners[miner]
	if !ok {
		return nil
	}
	nums := make([]uint64, 0, ms.sectors.len())
	ms.sectors.each(func(n uint64, _ loc) {
		if n >= from {
			nums = append(nums, n)
		}
	})
	slices.Sort(nums)
	if limit > 0 && len(nums) > limit {
		nums = nums[:limit]
	}
	out := make([]SectorLocation, len(nums))
	for i, n := range nums {
		l, _ := ms.sectors.get(n)
		out[i] = f.st.expand(SectorID{Miner: miner, Number: n}, l)
	}
	return out
}

// SectorCount is the number of locations a miner has.
func (f *FSM) SectorCount(miner uint64) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if ms, ok := f.st.miners[miner]; ok {
		return ms.sectors.len()
	}
	return 0
}

// Stats are sizes for metrics.
type Stats struct {
	Miners, Storage, Sectors, Assignments int
}

// Stats counts what the state holds.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := Stats{Miners: len(f.st.miners), Storage: len(f.st.storageByName), Assignments: len(f.st.assignments)}
	for _, m := range f.st.miners {
		s.Sectors += m.sectors.len()
	}
	return s
}

// Assignments lists deadline owners by miner and deadline.
func (f *FSM) Assignments() []Assignment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Assignment, 0, len(f.st.assignments))
	for _, a := range f.st.assignments {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Assignment) int {
		return cmp.Or(cmp.Compare(a.Miner, b.Miner), cmp.Compare(a.Deadline, b.Deadline))
	})
	return out
}

// Records returns the kept outcomes of one deadline, oldest first.
func (f *FSM) Records(k DeadlineKey) []DeadlineRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.st.records[k])
}
