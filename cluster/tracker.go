package cluster

import (
	"fmt"
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

// lastAppliableIndex is the index of the newest log entry the FSM will be
// handed (a command or configuration), or the snapshot index if later.
// No-op and barrier entries never reach the FSM, so they cannot count.
func lastAppliableIndex(logs raft.LogStore, snaps raft.SnapshotStore) (uint64, error) {
	var snapIndex uint64
	if metas, err := snaps.List(); err != nil {
		return 0, fmt.Errorf("list snapshots: %w", err)
	} else if len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, err
	}
	for i := last; i >= first && i > snapIndex && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("read log %d: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, nil
		}
	}
	return snapIndex, nil
}
