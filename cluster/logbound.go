package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// logCacheEntries is how many recent entries raft.LogCache keeps in memory
// for replication. It counts entries whatever their size, and an import
// batch is about half a megabyte: 512 of them held 280 MB. 64 is one full
// AppendEntries batch (raft's MaxAppendEntries); older entries are read
// from the log store (the WAL's segments, or bolt's memory map).
const logCacheEntries = 64

// defaultSnapshotLogBytes is the log size that always allows a snapshot,
// however small the state: below it a snapshot is not worth taking.
const defaultSnapshotLogBytes = 16 << 20

// logBoundInterval is how often the budget (which follows the newest
// snapshot's size) and TrailingLogs are brought up to date. A log that
// outgrows its budget does not wait for it: the store signals at once.
const logBoundInterval = time.Second

// boundLog keeps the raft log's files within twice the size of a snapshot
// (plus the WAL's preallocated segments; see walSegmentBytes). raft
// snapshots and trims by entry count only; here the log's bytes decide
// too:
//   - budget = half the newest snapshot's size, or SnapshotLogBytes if more;
//   - TrailingLogs (what a trim keeps) is as many of the newest entries as
//     fit in half the budget, at most the configured count;
//   - once the log holds more than the budget, a snapshot is taken, which
//     trims it to those trailing entries.
//
// With LogStore bolt, bolt never returns freed pages to the file system,
// and grows its file to the next power of two (below 16 MB) or by 16 MB
// steps: raft.db ends at up to twice the most the log ever held. Hence half a snapshot: the file
// stays within a snapshot's size or twice SnapshotLogBytes. The cost is a
// snapshot written for every quarter snapshot of log.
func (n *Node) boundLog() {
	t := time.NewTicker(logBoundInterval)
	defer t.Stop()
	for {
		n.checkLogBound()
		select {
		case <-n.done:
			return
		case <-t.C:
		case <-n.sized.over:
		}
	}
}

func (n *Node) logBudget() uint64 {
	budget := n.cfg.SnapshotLogBytes
	metas, err := n.snaps.List()
	if err == nil && len(metas) > 0 {
		budget = max(budget, uint64(metas[0].Size)/2)
	}
	return budget
}

// logSizes is what vsm_raft_log_bytes exports.
func (n *Node) logSizes() map[string]uint64 {
	// The budget checkLogBound last set: a scrape need not list the
	// snapshots again.
	sizes := map[string]uint64{"entries": n.sized.Bytes(), "budget": n.sized.limit.Load()}
	// On disk: raft.db, plus the WAL's segment files (preallocated, so
	// they count in full from their creation).
	var file uint64
	for _, pattern := range []string{filepath.Join(n.cfg.Dir, raftDBFile), filepath.Join(n.cfg.Dir, walDir, "*")} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
				file += uint64(st.Size())
			}
		}
	}
	if file > 0 {
		sizes["file"] = file
	}
	return sizes
}

func (n *Node) checkLogBound() {
	budget := n.logBudget()
	trailing := max(n.sized.newestWithin(budget/2, n.cfg.TrailingLogs), 1)
	rc := n.raft.ReloadableConfig()
	if rc.TrailingLogs != trailing {
		rc.TrailingLogs = trailing
		if err := n.raft.ReloadConfig(rc); err != nil {
			n.log.Warn("set raft trailing logs for the log size budget", zap.Uint64("trailing", trailing), zap.Error(err))
		}
	}
	n.sized.limit.Store(budget)
	size := n.sized.Bytes()
	if size <= budget {
		return
	}
	n.log.Info("raft log exceeds its size budget; taking a snapshot to trim it",
		zap.Uint64("log_bytes", size), zap.Uint64("budget_bytes", budget), zap.Uint64("trailing_entries", trailing))
	err := n.raft.Snapshot().Error()
	switch {
	case err == nil, errors.Is(err, raft.ErrNothingNewToSnapshot):
	case errors.Is(err, raft.ErrRaftShutdown):
	default:
		n.log.Warn("snapshot for the log size budget", zap.Error(err))
	}
}
