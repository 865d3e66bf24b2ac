package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// appliedIndex is the index of the last entry the FSM applied, with a
// broadcast to whoever waits for it to move: consistent reads wait on it
// instead of polling raft.
type appliedIndex struct {
	v atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when v moves while waited on
	waiting bool
}

func (a *appliedIndex) Load() uint64 { return a.v.Load() }

// Store records index and wakes every waiter. The FSM goroutine calls it
// per entry, so it costs an atomic store and an uncontended lock unless
// someone waits.
func (a *appliedIndex) Store(index uint64) {
	a.v.Store(index)
	a.mu.Lock()
	if a.waiting {
		close(a.changed)
		a.changed, a.waiting = nil, false
	}
	a.mu.Unlock()
}

// next returns a channel closed at the next Store.
func (a *appliedIndex) next() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.waiting {
		a.changed, a.waiting = make(chan struct{}), true
	}
	return a.changed
}

// waitFor blocks until done reports true, checking it again after every
// Store, and also at each tick of recheck while recheck() returns a
// channel (nil: no timer needed now).
func (a *appliedIndex) waitFor(ctx context.Context, done func() bool, recheck func() <-chan time.Time) error {
	for {
		ch := a.next() // taken before the check, so no Store is missed
		if done() {
			return nil
		}
		select {
		case <-ch:
		case <-recheck():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
