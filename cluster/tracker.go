package cluster

import (
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/vsm-project/vsm/fsm"
)

// trackedFSM records the index of the last entry the FSM actually applied.
// raft.AppliedIndex is not enough for read readiness: raft advances it when
// it hands a batch to the FSM goroutine, before the FSM has applied it.
type trackedFSM struct {
	*fsm.FSM
	applied atomic.Uint64
}

func (t *trackedFSM) Apply(l *raft.Log) any {
	r := t.FSM.Apply(l)
	t.applied.Store(l.Index)
	return r
}

// StoreConfiguration implements raft.ConfigurationStore, so configuration
// entries count as applied too.
func (t *trackedFSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	t.applied.Store(index)
}
