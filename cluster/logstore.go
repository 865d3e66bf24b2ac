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
	// lost log instead of being recreated empty.
	logStoreKey = "vsm-log-store-wal"
)

// walBatch is how many entries a migration copies per append.
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

// openLogStore returns the raft log store kind names, on top of the bolt
// store that holds the stable store. A node whose log is still in raft.db
// is moved to wal/ when kind is LogStoreWAL: the copy is made in a scratch
// directory and renamed into place, then raft.db's copy is deleted, so a
// crash at any point leaves one complete log. The closer, if not nil,
// closes what was opened besides bolt.
func openLogStore(dir, kind string, bolt *raftboltdb.BoltStore, hlog hclog.Logger, log *zap.Logger) (raft.LogStore, io.Closer, error) {
	path := filepath.Join(dir, walDir)
	_, statErr := os.Stat(path)
	haveWAL := statErr == nil
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("raft log %s: %w", path, statErr)
	}
	marked, err := bolt.GetUint64([]byte(logStoreKey))
	if err != nil && err.Error() != "not found" {
		return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	switch kind {
	case LogStoreBolt:
		if haveWAL || marked != 0 {
			return nil, nil, fmt.Errorf("this node's raft log is in %s, and vsm does not move a log back into %s: set [Raft] LogStore = %q", path, raftDBFile, LogStoreWAL)
		}
		return bolt, nil, nil
	case LogStoreWAL, "":
	default:
		return nil, nil, fmt.Errorf("unknown raft log store %q: use %q or %q", kind, LogStoreWAL, LogStoreBolt)
	}
	if !haveWAL && marked != 0 {
		return nil, nil, damaged("lost-raft-db", "%s is missing but %s says this node's raft log was kept there: a member without its log must not vote", path, filepath.Join(dir, raftDBFile))
	}
	boltFirst, boltLast, err := logBounds(bolt)
	if err != nil {
		return nil, nil, fmt.Errorf("read raft log in %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	if !haveWAL && boltLast > 0 {
		n, err := migrateToWAL(dir, bolt, boltFirst, boltLast, hlog)
		if err != nil {
			return nil, nil, fmt.Errorf("move the raft log from %s to %s: %w; raft.db is unchanged, and the node can run on it with [Raft] LogStore = %q", filepath.Join(dir, raftDBFile), path, err, LogStoreBolt)
		}
		log.Info("moved the raft log from raft.db to wal/", zap.Int("entries", n), zap.Uint64("first", boltFirst), zap.Uint64("last", boltLast))
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, nil, fmt.Errorf("raft log %s: %w", path, err)
	}
	w, err := openWAL(path, hlog)
	if err != nil {
		return nil, nil, damaged("raft-db-corrupt", "open the raft log in %s: %v", path, err)
	}
	if walLast, err := w.LastIndex(); err == nil && walLast > 0 && marked == 0 && boltLast == 0 {
		// The WAL was made on an earlier start, which also marked raft.db
		// (a crash before the mark leaves an empty WAL, or raft.db's copy
		// of the log): this raft.db is a new one.
		w.Close()
		return nil, nil, damaged("lost-raft-db", "%s is missing or empty but the raft log in %s holds entries up to index %d: the term and vote kept in raft.db are gone, and a member that lost them must not vote", filepath.Join(dir, raftDBFile), path, walLast)
	}
	if err := bolt.SetUint64([]byte(logStoreKey), 1); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("record the log store in %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	// A crash between the rename and this delete leaves raft.db's copy
	// behind; the WAL holds all of it.
	if boltLast > 0 {
		if last, err := w.LastIndex(); err != nil || last < boltLast {
			w.Close()
			return nil, nil, damaged("raft-db-corrupt", "%s ends at index %d but %s still holds entries up to %d", path, last, filepath.Join(dir, raftDBFile), boltLast)
		}
		if err := bolt.DeleteRange(boltFirst, boltLast); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("drop the copied log from %s: %w", filepath.Join(dir, raftDBFile), err)
		}
	}
	return w, w, nil
}

func logBounds(s raft.LogStore) (first, last uint64, err error) {
	if first, err = s.FirstIndex(); err != nil {
		return 0, 0, err
	}
	last, err = s.LastIndex()
	return first, last, err
}

// migrateToWAL copies bolt's log into a new WAL under wal.migrating and
// renames it to wal. A gap at the head (an interrupted compaction) is
// skipped; a gap after the first entry copied is an error, since the WAL
// holds only contiguous entries.
func migrateToWAL(dir string, bolt raft.LogStore, first, last uint64, hlog hclog.Logger) (int, error) {
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
	copied, batch := 0, make([]*raft.Log, 0, walBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := w.StoreLogs(batch)
		copied += len(batch)
		batch = batch[:0]
		return err
	}
	for i := first; i <= last; i++ {
		l := new(raft.Log)
		err := bolt.GetLog(i, l)
		if errors.Is(err, raft.ErrLogNotFound) && copied == 0 && len(batch) == 0 {
			continue
		}
		if err != nil {
			w.Close()
			return 0, fmt.Errorf("read index %d: %w", i, err)
		}
		if batch = append(batch, l); len(batch) == walBatch {
			if err := flush(); err != nil {
				w.Close()
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDir)); err != nil {
		return 0, err
	}
	return copied, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
