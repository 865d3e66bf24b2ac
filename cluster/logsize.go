package cluster

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// logEntryOverhead approximates what bolt stores per entry beyond its data
// (key, msgpack framing of index, term, type and times).
const logEntryOverhead = 64

// sizedLogStore is a raft.LogStore that knows how many bytes its entries
// hold. raft counts its log in entries only (SnapshotThreshold,
// TrailingLogs), and one import batch is half a megabyte while a deadline
// record is a hundred bytes, so a count bounds nothing on disk.
type sizedLogStore struct {
	raft.LogStore

	mu    sync.Mutex
	first uint64   // index of sizes[0]
	sizes []uint32 // sizes[i]: bytes of entry first+i
	total uint64

	// limit is the budget boundLog set; a store that takes the log past
	// it signals over at once, so the snapshot does not wait for a tick.
	limit atomic.Uint64
	over  chan struct{}
}

// newSizedLogStore wraps store and reads the size of every entry it holds.
func newSizedLogStore(store raft.LogStore) (*sizedLogStore, error) {
	s := &sizedLogStore{LogStore: store, over: make(chan struct{}, 1)}
	s.limit.Store(^uint64(0))
	first, err := store.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("size the raft log: %w", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("size the raft log: %w", err)
	}
	if last == 0 {
		return s, nil
	}
	s.first = first
	for i := first; i <= last; i++ {
		var l raft.Log
		err := store.GetLog(i, &l)
		if errors.Is(err, raft.ErrLogNotFound) {
			s.sizes = append(s.sizes, 0) // a hole left by an interrupted delete
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("size the raft log at index %d: %w", i, err)
		}
		s.append(&l)
	}
	return s, nil
}

func entrySize(l *raft.Log) uint32 {
	return uint32(len(l.Data) + len(l.Extensions) + logEntryOverhead)
}

func (s *sizedLogStore) append(l *raft.Log) {
	next := s.first + uint64(len(s.sizes))
	switch {
	case len(s.sizes) == 0 || l.Index < s.first || l.Index > next:
		// First entry, or one after a snapshot install emptied the log.
		s.first, s.sizes, s.total = l.Index, s.sizes[:0], 0
	case l.Index < next: // overwriting a conflicting suffix
		s.dropFrom(l.Index)
	}
	size := entrySize(l)
	s.sizes = append(s.sizes, size)
	s.total += uint64(size)
}

// StoreLog implements raft.LogStore.
func (s *sizedLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore.
func (s *sizedLogStore) StoreLogs(logs []*raft.Log) error {
	if err := s.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	s.mu.Lock()
	for _, l := range logs {
		s.append(l)
	}
	total := s.total
	s.mu.Unlock()
	if total > s.limit.Load() {
		select {
		case s.over <- struct{}{}:
		default:
		}
	}
	return nil
}

// IsMonotonic implements raft.MonotonicLogStore for a store that does:
// raft-wal holds only contiguous entries, so raft must empty it when it
// installs a snapshot instead of leaving a gap after the old entries.
func (s *sizedLogStore) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// DeleteRange implements raft.LogStore. raft deletes a prefix (compaction
// after a snapshot) or a suffix (entries a new leader overwrites).
func (s *sizedLogStore) DeleteRange(lo, hi uint64) error {
	if err := s.LogStore.DeleteRange(lo, hi); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sizes) == 0 {
		return nil
	}
	last := s.first + uint64(len(s.sizes)) - 1
	lo, hi = max(lo, s.first), min(hi, last)
	switch {
	case lo > hi:
	case lo == s.first:
		for _, b := range s.sizes[:hi-lo+1] {
			s.total -= uint64(b)
		}
		// Copy down rather than reslice so the array does not keep growing
		// at its end while its head is forgotten.
		s.sizes = s.sizes[:copy(s.sizes, s.sizes[hi-lo+1:])]
		s.first = hi + 1
	case hi == last:
		s.dropFrom(lo)
	default:
		for i := lo; i <= hi; i++ {
			s.total -= uint64(s.sizes[i-s.first])
			s.sizes[i-s.first] = 0
		}
	}
	return nil
}

func (s *sizedLogStore) dropFrom(index uint64) {
	for _, b := range s.sizes[index-s.first:] {
		s.total -= uint64(b)
	}
	s.sizes = s.sizes[:index-s.first]
}

// Bytes is what the log's entries hold now.
func (s *sizedLogStore) Bytes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// newestWithin counts the newest entries that fit in budget bytes, at most
// limit of them.
func (s *sizedLogStore) newestWithin(budget, limit uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n, sum uint64
	for i := len(s.sizes) - 1; i >= 0 && n < limit; i-- {
		sum += uint64(s.sizes[i])
		if sum > budget {
			break
		}
		n++
	}
	return n
}
