package cluster

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/vsm-project/vsm/fsm"
)

// trackedFSM records the index of the last entry the FSM actually applied.
// raft.AppliedIndex is not enough for read readiness: raft advances it when
// it hands a batch to the FSM goroutine, before the FSM has applied it.
//
// It also remembers the outcome of recent entries, so that a leader whose
// write lost its leadership in flight (a transfer, an election) can learn
// whether the entry was committed after all, and with what result: see
// Node.settleLost.
type trackedFSM struct {
	*fsm.FSM
	applied appliedIndex

	// durable, when set, returns once the local log holds every entry up
	// to index on disk (leaderLog.waitDurable): a leader's FSM must not
	// apply an entry its raft counted as committed before it was synced.
	durable func(index uint64) error
	// broken is set once an entry could not be made durable: raft has
	// moved its applied index past entries the FSM never applied, so
	// this state must not be saved as a snapshot of that index.
	broken atomic.Bool

	mu      sync.Mutex
	seed    maphash.Seed
	recent  [recentApplied]appliedEntry
	waiters map[uint64]*applyWaiter
}

// recentApplied is how many outcomes are kept; a write's fate is looked up
// within milliseconds to seconds of its apply.
const recentApplied = 4096

type appliedEntry struct {
	index, term, sum uint64
	res              any
}

type applyWaiter struct {
	minTerm, sum uint64
	done         chan applyOutcome
}

// applyOutcome is what became of a write whose future failed: ours is
// true when the entry at its index is the one it submitted.
type applyOutcome struct {
	res  any
	ours bool
}

func newTrackedFSM(f *fsm.FSM) *trackedFSM {
	return &trackedFSM{FSM: f, seed: maphash.MakeSeed(), waiters: map[uint64]*applyWaiter{}}
}

func (t *trackedFSM) sum(data []byte) uint64 { return maphash.Bytes(t.seed, data) }

func (t *trackedFSM) Apply(l *raft.Log) any {
	if err := t.waitDurable(l.Index); err != nil {
		return fsm.Result{Err: err}
	}
	r := t.FSM.Apply(l)
	t.record(l, r)
	t.applied.Store(l.Index)
	return r
}

// ApplyBatch implements raft.BatchingFSM: raft hands over every committed
// entry it has at once (up to MaxAppendEntries), and waiters for the
// applied index are woken once per batch rather than once per entry.
// Configuration entries come here too (StoreConfiguration is not called
// for them when batching) and count as applied.
func (t *trackedFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	if err := t.waitDurable(logs[len(logs)-1].Index); err != nil {
		// The node is stopping (the write failure is fatal); nothing in
		// the batch is applied or counted as applied. The entries may
		// still be committed by the next leader: their fate is unknown.
		for i := range out {
			out[i] = fsm.Result{Err: err}
		}
		return out
	}
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = t.FSM.Apply(l)
			t.record(l, out[i])
		}
	}
	t.applied.Store(logs[len(logs)-1].Index)
	return out
}

func (t *trackedFSM) waitDurable(index uint64) error {
	if t.durable == nil {
		return nil
	}
	if err := t.durable(index); err != nil {
		t.broken.Store(true)
		return fmt.Errorf("%w: entry %d could not be written to this node's raft log (%v); the node stops, and the next leader may still commit the write, so it may or may not have been applied", ErrTimeout, index, err)
	}
	return nil
}

// Snapshot implements raft.FSM, refusing once the state is behind what
// raft believes it applied.
func (t *trackedFSM) Snapshot() (raft.FSMSnapshot, error) {
	if t.broken.Load() {
		return nil, errors.New("snapshot refused: this node's FSM skipped entries its raft log could not hold; the node is stopping")
	}
	return t.FSM.Snapshot()
}

// record keeps the outcome of a command entry for settleLost.
func (t *trackedFSM) record(l *raft.Log, r any) {
	e := appliedEntry{index: l.Index, term: l.Term, sum: t.sum(l.Data), res: r}
	t.mu.Lock()
	t.recent[l.Index%recentApplied] = e
	if w, ok := t.waiters[l.Index]; ok {
		delete(t.waiters, l.Index)
		w.done <- applyOutcome{res: r, ours: l.Term >= w.minTerm && e.sum == w.sum}
	}
	t.mu.Unlock()
}

// watch reports what the FSM applies at index: at once if it already has,
// else once it does. cancel drops the watch.
func (t *trackedFSM) watch(index, minTerm uint64, data []byte) (<-chan applyOutcome, func()) {
	ch := make(chan applyOutcome, 1)
	sum := t.sum(data)
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.recent[index%recentApplied]; e.index == index {
		ch <- applyOutcome{res: e.res, ours: e.term >= minTerm && e.sum == sum}
		return ch, func() {}
	}
	t.waiters[index] = &applyWaiter{minTerm: minTerm, sum: sum, done: ch}
	return ch, func() {
		t.mu.Lock()
		delete(t.waiters, index)
		t.mu.Unlock()
	}
}

// matches tells whether a log entry is the command data was.
func (t *trackedFSM) matches(l *raft.Log, minTerm uint64, data []byte) bool {
	return l.Type == raft.LogCommand && l.Term >= minTerm && t.sum(l.Data) == t.sum(data)
}

// StoreConfiguration implements raft.ConfigurationStore, so configuration
// entries count as applied too.
func (t *trackedFSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	t.applied.Store(index)
}
