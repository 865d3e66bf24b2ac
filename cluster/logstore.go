package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.uber.org/zap"
)

// Where a node keeps its raft log (Config.LogStore). raft.db (bolt) always
// holds the stable store: the current term and the vote.
const (
	// LogStoreWAL keeps the log in hashicorp/raft-wal segment files under
	// wal/: one fsync per append against bolt's two, which makes every
	// acknowledged write about a third of a millisecond faster on each of
	// the leader and a follower (BenchmarkLogStoreAppend, make bench-etcd).
	LogStoreWAL = "wal"
	// LogStoreBolt keeps the log in raft.db beside the stable store.
	LogStoreBolt = "bolt"
)

const (
	walDir          = "wal"
	walMigratingDir = "wal.migrating"
	// logStoreKey, in raft.db's stable store, records that this node's log
	// lives in wal/, so that a wal/ that later goes missing is reported as a
	// lost log instead of being recreated empty. It is the commit point of
	// a move from raft.db: before it raft.db's log and term are the truth,
	// after it wal/ and the prefixed term are.
	logStoreKey = "vsm-log-store-wal"
	// Values of logStoreKey: the move is committed but raft.db's own copy
	// is not emptied yet; the move is done.
	markMoving, markMoved = 2, 1
	// walStablePrefix prefixes raft's stable keys (term, vote) while the log
	// is in wal/. A version of vsm that keeps its log in raft.db then finds
	// neither a log nor a term there and refuses to start (lost-raft-db),
	// instead of voting with an empty log after a downgrade.
	walStablePrefix = "wal-"
)

// raft's stable store keys (raft.go: keyCurrentTerm, keyLastVoteTerm,
// keyLastVoteCand).
var raftStableUint64Keys, raftStableKeys = []string{"CurrentTerm", "LastVoteTerm"}, []string{"LastVoteCand"}

// walBatch is how many entries a move copies per append.
const walBatch = 1024

// walSegmentBytes is the size of one WAL segment file (raft-wal's default
// is 64 MiB). Segments are preallocated and deleted whole once every entry
// in them is compacted away, so the log takes up to about two segments
// more than its entries on disk; vsm's log is bounded at a few MB
// (boundLog), and 16 MiB keeps that slack small.
const walSegmentBytes = 16 << 20

func openWAL(path string, hlog hclog.Logger) (*wal.WAL, error) {
	return wal.Open(path, wal.WithLogger(hlog.Named("wal")), wal.WithSegmentSize(walSegmentBytes))
}

// raftStores are the log and stable stores raft runs on.
type raftStores struct {
	logs   raft.LogStore
	stable raft.StableStore
	closer io.Closer // what was opened besides bolt; may be nil
}

// openLogStore returns the stores kind names, on top of the bolt store
// raft.db. With LogStoreWAL a log still in raft.db is moved to wal/: the
// copy is made in a scratch directory and renamed into place, raft's term
// and vote are copied to prefixed keys, the mark is set, and only then is
// raft.db's copy emptied, so a crash at any point leaves one complete log.
// snapIndex is the index of the snapshot raft restores first (0 if none):
// log entries at or below it are not needed, and entries left over from
// before a snapshot install must not stay in front of a gap.
func openLogStore(dir, kind string, bolt *raftboltdb.BoltStore, snapIndex uint64, hlog hclog.Logger, log *zap.Logger) (raftStores, error) {
	path := filepath.Join(dir, walDir)
	haveWAL, err := exists(path)
	if err != nil {
		return raftStores{}, fmt.Errorf("raft log %s: %w", path, err)
	}
	mark, err := getUint64(bolt, logStoreKey)
	marked := mark != 0
	if err != nil {
		return raftStores{}, fmt.Errorf("read %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	switch kind {
	case LogStoreBolt:
		if haveWAL || marked {
			return raftStores{}, fmt.Errorf("this node's raft log is in %s, and vsm does not move a log back into %s: set [Raft] LogStore = %q", path, raftDBFile, LogStoreWAL)
		}
		return raftStores{logs: bolt, stable: bolt}, nil
	case LogStoreWAL, "":
	default:
		return raftStores{}, fmt.Errorf("unknown raft log store %q: use %q or %q", kind, LogStoreWAL, LogStoreBolt)
	}
	if marked {
		return openMarkedWAL(dir, bolt, mark, snapIndex, hlog)
	}
	// Not marked: raft.db's log and term are the truth. A wal/ here is a
	// fresh one from a start that crashed before marking, or a complete
	// copy of raft.db's log.
	boltFirst, boltLast, err := logBounds(bolt)
	if err != nil {
		return raftStores{}, fmt.Errorf("read raft log in %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	if haveWAL && boltLast > 0 {
		// An empty WAL made by a start that crashed before marking, and
		// raft.db written since: make the move afresh.
		if empty, err := emptyWAL(path, hlog); err != nil {
			return raftStores{}, err
		} else if empty {
			if err := os.RemoveAll(path); err != nil {
				return raftStores{}, fmt.Errorf("remove the empty raft log %s: %w", path, err)
			}
			haveWAL = false
		}
	}
	if !haveWAL && boltLast > 0 {
		n, err := migrateToWAL(dir, bolt, boltFirst, boltLast, snapIndex, hlog)
		if err != nil {
			return raftStores{}, fmt.Errorf("move the raft log from %s to %s: %w; nothing in %s was changed, and the node can run on it with [Raft] LogStore = %q", filepath.Join(dir, raftDBFile), path, err, raftDBFile, LogStoreBolt)
		}
		log.Info("moved the raft log from raft.db to wal/", zap.Int("entries", n), zap.Uint64("first", boltFirst), zap.Uint64("last", boltLast))
	} else if !haveWAL {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return raftStores{}, fmt.Errorf("raft log %s: %w", path, err)
		}
		if err := syncDir(dir); err != nil {
			return raftStores{}, fmt.Errorf("raft log %s: %w", path, err)
		}
	}
	w, err := openWAL(path, hlog)
	if err != nil {
		return raftStores{}, damaged("raft-db-corrupt", "open the raft log in %s: %v", path, err)
	}
	stores, err := commitMove(dir, bolt, w, boltFirst, boltLast)
	if err == nil {
		err = dropBelowSnapshot(w, snapIndex)
	}
	if err != nil {
		w.Close()
		return raftStores{}, err
	}
	return stores, nil
}

func emptyWAL(path string, hlog hclog.Logger) (bool, error) {
	w, err := openWAL(path, hlog)
	if err != nil {
		return false, damaged("raft-db-corrupt", "open the raft log in %s: %v", path, err)
	}
	defer w.Close()
	last, err := w.LastIndex()
	return last == 0, err
}

// dropBelowSnapshot empties a WAL that ends below the snapshot raft will
// restore: raft's next append follows the snapshot, and the WAL refuses an
// append after a gap. It happens after a crash between a snapshot install
// and raft's removal of the older entries, and when a bolt log kept only
// entries older than an installed snapshot is moved.
func dropBelowSnapshot(w *wal.WAL, snapIndex uint64) error {
	first, last, err := logBounds(w)
	if err != nil || last == 0 || last >= snapIndex {
		return err
	}
	if err := w.DeleteRange(first, last); err != nil {
		return fmt.Errorf("drop log entries %d..%d older than snapshot %d: %w", first, last, snapIndex, err)
	}
	return nil
}

// sameEntry reports whether two log stores hold the same entry at index.
func sameEntry(a, b raft.LogStore, index uint64) bool {
	var x, y raft.Log
	return a.GetLog(index, &x) == nil && b.GetLog(index, &y) == nil && x.Term == y.Term && x.Type == y.Type && string(x.Data) == string(y.Data)
}

// commitMove makes the unmarked raft.db's state wal/'s: the term and vote
// copied to prefixed keys, the mark set, then raft.db's own term, vote and
// log emptied.
func commitMove(dir string, bolt *raftboltdb.BoltStore, w *wal.WAL, boltFirst, boltLast uint64) (raftStores, error) {
	db := filepath.Join(dir, raftDBFile)
	walLast, err := w.LastIndex()
	if err != nil {
		return raftStores{}, damaged("raft-db-corrupt", "read the raft log in %s: %v", filepath.Join(dir, walDir), err)
	}
	switch {
	case walLast > 0 && boltLast == 0:
		// The WAL was made on an earlier start, which marked raft.db
		// before anything could be appended: this raft.db is a new one.
		return raftStores{}, damaged("lost-raft-db", "%s is missing or empty but the raft log in %s holds entries up to index %d: the term and vote kept in raft.db are gone, and a member that lost them must not vote", db, filepath.Join(dir, walDir), walLast)
	case walLast != boltLast || (boltLast > 0 && !sameEntry(w, bolt, boltLast)):
		// raft never runs on an unmarked WAL, so a complete copy ends
		// exactly where raft.db's log does. raft.db was written after the
		// copy (an older vsm), or put back from an older backup.
		return raftStores{}, damaged("raft-db-corrupt", "%s ends at index %d but %s, which still holds this node's log, ends at %d (or differs there): the copy in %s is stale; move %s aside and start again to copy the log afresh", filepath.Join(dir, walDir), walLast, db, boltLast, filepath.Join(dir, walDir), filepath.Join(dir, walDir))
	}
	for _, k := range raftStableUint64Keys {
		v, err := getUint64(bolt, k)
		if err == nil {
			err = bolt.SetUint64([]byte(walStablePrefix+k), v)
		}
		if err != nil {
			return raftStores{}, fmt.Errorf("copy %s in %s: %w", k, db, err)
		}
	}
	for _, k := range raftStableKeys {
		v, err := bolt.Get([]byte(k))
		if err != nil && err.Error() == "not found" {
			continue
		}
		if err == nil {
			err = bolt.Set([]byte(walStablePrefix+k), v)
		}
		if err != nil {
			return raftStores{}, fmt.Errorf("copy %s in %s: %w", k, db, err)
		}
	}
	if err := bolt.SetUint64([]byte(logStoreKey), markMoving); err != nil {
		return raftStores{}, fmt.Errorf("record the log store in %s: %w", db, err)
	}
	if err := finishMove(bolt, boltFirst, boltLast); err != nil {
		return raftStores{}, fmt.Errorf("%s: %w", db, err)
	}
	return raftStores{logs: w, stable: prefixedStable{bolt}, closer: w}, nil
}

// finishMove empties raft.db's own raft state once it is wal/'s: its log
// entries are deleted and its term and vote zeroed (raft-boltdb cannot
// delete a key), then the mark says the move is done. It may run again
// after a crash.
func finishMove(bolt *raftboltdb.BoltStore, first, last uint64) error {
	if last > 0 {
		if err := bolt.DeleteRange(first, last); err != nil {
			return fmt.Errorf("drop the log copied to wal/: %w", err)
		}
	}
	for _, k := range raftStableUint64Keys {
		if err := bolt.SetUint64([]byte(k), 0); err != nil {
			return fmt.Errorf("clear %s: %w", k, err)
		}
	}
	for _, k := range raftStableKeys {
		if err := bolt.Set([]byte(k), []byte{}); err != nil {
			return fmt.Errorf("clear %s: %w", k, err)
		}
	}
	if err := bolt.SetUint64([]byte(logStoreKey), markMoved); err != nil {
		return fmt.Errorf("record the log store: %w", err)
	}
	return nil
}

// openMarkedWAL opens the WAL of a node whose raft.db says its log is
// there. raft-wal rebuilds a missing index (wal-meta.db) as an empty log
// and deletes the segments it finds, so a missing index is refused here,
// before raft-wal sees the directory.
func openMarkedWAL(dir string, bolt *raftboltdb.BoltStore, mark, snapIndex uint64, hlog hclog.Logger) (raftStores, error) {
	path := filepath.Join(dir, walDir)
	if err := checkMarkedWAL(dir); err != nil {
		return raftStores{}, err
	}
	w, err := openWAL(path, hlog)
	if err != nil {
		return raftStores{}, damaged("raft-db-corrupt", "open the raft log in %s: %v", path, err)
	}
	err = settleMarked(dir, bolt, w, mark)
	if err == nil {
		err = dropBelowSnapshot(w, snapIndex)
	}
	if err != nil {
		w.Close()
		return raftStores{}, err
	}
	return raftStores{logs: w, stable: prefixedStable{bolt}, closer: w}, nil
}

// settleMarked checks raft.db's own state on a node whose log is in wal/,
// and finishes a move a crash interrupted.
func settleMarked(dir string, bolt *raftboltdb.BoltStore, w *wal.WAL, mark uint64) error {
	path, db := filepath.Join(dir, walDir), filepath.Join(dir, raftDBFile)
	first, last, err := logBounds(bolt)
	if err != nil {
		return fmt.Errorf("read raft log in %s: %w", db, err)
	}
	term, err := getUint64(bolt, "CurrentTerm")
	if err != nil {
		return fmt.Errorf("read %s: %w", db, err)
	}
	walTerm, err := getUint64(prefixedStable{bolt}, "CurrentTerm")
	if err != nil {
		return fmt.Errorf("read %s: %w", db, err)
	}
	walLast, err := w.LastIndex()
	if err != nil {
		return damaged("raft-db-corrupt", "read the raft log in %s: %v", path, err)
	}
	foreign := func() error {
		return damaged("lost-raft-db", "%s holds raft state of its own (log up to index %d, term %d) beside the log moved to %s (up to index %d, term %d): a version of vsm that keeps its log in raft.db ran on it, and neither log is complete; a member without its log must not vote", db, last, term, path, walLast, walTerm)
	}
	if mark != markMoving {
		// After a move raft.db holds neither entries nor a term of its
		// own: something that keeps its log in raft.db wrote there since.
		if last > 0 || term > 0 {
			return foreign()
		}
		return nil
	}
	// A crash before the end of finishMove: raft.db's own copy is stale
	// and goes, unless something wrote past the moved state since.
	if term > walTerm || last > walLast {
		return foreign()
	}
	if err := finishMove(bolt, first, last); err != nil {
		return fmt.Errorf("%s: %w", db, err)
	}
	return nil
}

// checkMarkedWAL refuses a marked node whose wal/ or WAL index is gone.
func checkMarkedWAL(dir string) error {
	path := filepath.Join(dir, walDir)
	db := filepath.Join(dir, raftDBFile)
	if ok, err := exists(path); err != nil || !ok {
		return damaged("lost-raft-db", "%s is missing (%v) but %s says this node's raft log was kept there: a member without its log must not vote", path, err, db)
	}
	meta := filepath.Join(path, metadb.FileName)
	if ok, err := exists(meta); err != nil || !ok {
		return damaged("lost-raft-db", "%s is missing (%v): without it the raft log in %s cannot be read, and a member without its log must not vote", meta, err, path)
	}
	return nil
}

// prefixedStable is raft's stable store while the log is in wal/: raft.db
// with every key prefixed (see walStablePrefix).
type prefixedStable struct{ s raft.StableStore }

func (p prefixedStable) Set(k, v []byte) error {
	return p.s.Set(append([]byte(walStablePrefix), k...), v)
}
func (p prefixedStable) Get(k []byte) ([]byte, error) {
	return p.s.Get(append([]byte(walStablePrefix), k...))
}
func (p prefixedStable) SetUint64(k []byte, v uint64) error {
	return p.s.SetUint64(append([]byte(walStablePrefix), k...), v)
}
func (p prefixedStable) GetUint64(k []byte) (uint64, error) {
	return p.s.GetUint64(append([]byte(walStablePrefix), k...))
}

// getUint64 reads a uint64 stable key; an absent key is 0.
func getUint64(s raft.StableStore, key string) (uint64, error) {
	v, err := s.GetUint64([]byte(key))
	if err != nil && err.Error() == "not found" {
		return 0, nil
	}
	return v, err
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func logBounds(s raft.LogStore) (first, last uint64, err error) {
	if first, err = s.FirstIndex(); err != nil {
		return 0, 0, err
	}
	last, err = s.LastIndex()
	return first, last, err
}

// migrateToWAL copies bolt's log into a new WAL under wal.migrating and
// renames it to wal. Only the run of contiguous entries ending at the last
// one is copied: a non-monotonic store like bolt keeps entries from before
// a snapshot install in front of a gap, and those are covered by the
// snapshot. A gap above the newest snapshot is a hole in the log: refused.
func migrateToWAL(dir string, bolt raft.LogStore, first, last, snapIndex uint64, hlog hclog.Logger) (int, error) {
	start, err := contiguousFrom(bolt, first, last)
	if err != nil {
		return 0, err
	}
	if start > first && start-1 > snapIndex {
		return 0, fmt.Errorf("the log has no entry %d, between %d and %d, and the newest snapshot ends at %d: it has a hole", start-1, first, last, snapIndex)
	}
	tmp := filepath.Join(dir, walMigratingDir)
	if err := os.RemoveAll(tmp); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return 0, err
	}
	w, err := openWAL(tmp, hlog)
	if err != nil {
		return 0, err
	}
	defer w.Close() // also if bolt faults while it is read
	copied, batch := 0, make([]*raft.Log, 0, walBatch)
	for i := start; i <= last; i++ {
		l := new(raft.Log)
		if err := bolt.GetLog(i, l); err != nil {
			return 0, fmt.Errorf("read index %d: %w", i, err)
		}
		if batch = append(batch, l); len(batch) == walBatch || i == last {
			if err := w.StoreLogs(batch); err != nil {
				return 0, err
			}
			copied += len(batch)
			batch = batch[:0]
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDir)); err != nil {
		return 0, err
	}
	if err := syncDir(dir); err != nil {
		// The rename may or may not survive a crash now; either way the
		// next start sees one complete log.
		return 0, fmt.Errorf("sync %s after the rename: %w", dir, err)
	}
	return copied, nil
}

// contiguousFrom returns the first index of the run of entries that ends
// at last with no gap.
func contiguousFrom(s raft.LogStore, first, last uint64) (uint64, error) {
	var l raft.Log
	for i := last; i > first; i-- {
		err := s.GetLog(i-1, &l)
		if errors.Is(err, raft.ErrLogNotFound) {
			return i, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read index %d: %w", i-1, err)
		}
	}
	return first, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
