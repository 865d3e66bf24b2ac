package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/raft"
)

// Runbook is where every damaged-state error points the operator.
const Runbook = "docs/runbooks/raft-data.md"

// ErrDamagedState marks raft data on disk that vsm refuses to start from:
// a file that is truncated or corrupt, or a node that has held raft state
// and lost part of it. The error text names the file and the runbook
// section that fixes it; starting anyway could lose acknowledged writes
// silently or let a member with a forgotten log vote.
var ErrDamagedState = errors.New("raft data damaged")

func damaged(section, format string, args ...any) error {
	return fmt.Errorf("%w: %s; see %s#%s", ErrDamagedState, fmt.Sprintf(format, args...), Runbook, section)
}

// File names inside the raft directory.
const (
	raftDBFile      = "raft.db"
	clusterIDFile   = "cluster-id"
	snapshotsDir    = "snapshots"
	acceptSnapshot  = "accept-snapshot" // written by 'vsm cluster forget-state'
	acceptEmpty     = "empty"           // its content when no snapshot was kept
	snapMetaFile    = "meta.json"
	snapStateFile   = "state.bin"
	boltMagic       = 0xED0CDAED
	boltMetaOffset  = 16 // page header: id u64, flags u16, count u16, overflow u32
	boltMetaSumSize = 56 // bytes of the meta the checksum covers
)

// preflight checks the raft directory before anything opens it: bolt maps
// raft.db into memory and faults (SIGSEGV, not an error) on a truncated
// file, and raft skips or fails on a bad snapshot without naming it. It
// returns nil for a directory that is absent or fresh.
func preflight(dir string) error {
	if err := checkBoltFile(filepath.Join(dir, raftDBFile)); err != nil {
		return err
	}
	if err := checkSnapshots(dir); err != nil {
		return err
	}
	// A missing raft.db is judged now, before bolt would create an empty
	// one: the directory is left exactly as the operator found it.
	if _, err := os.Stat(filepath.Join(dir, raftDBFile)); errors.Is(err, os.ErrNotExist) {
		valid, _, err := scanSnapshots(dir)
		if err != nil {
			return err
		}
		return lostState(dir, emptyLog{}, emptyLog{}, valid)
	}
	return nil
}

// emptyLog stands for a raft.db that does not exist.
type emptyLog struct{}

func (emptyLog) LastIndex() (uint64, error)           { return 0, nil }
func (emptyLog) GetUint64(key []byte) (uint64, error) { return 0, nil }

// checkBoltFile reads raft.db's two meta pages the way bolt does and
// checks that the file is as long as the newest valid meta says, so a
// truncated copy is refused before it is mapped.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Size() == 0 {
		return nil // an empty file is judged with the other evidence (lostState)
	}
	type meta struct {
		pageSize, txid, pgid uint64
	}
	readMeta := func(off int64) (meta, bool) {
		buf := make([]byte, boltMetaOffset+64)
		if _, err := f.ReadAt(buf, off); err != nil {
			return meta{}, false
		}
		m := buf[boltMetaOffset:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != boltMagic {
			return meta{}, false
		}
		h := fnv.New64a()
		h.Write(m[:boltMetaSumSize])
		if h.Sum64() != le.Uint64(m[boltMetaSumSize:]) {
			return meta{}, false
		}
		return meta{pageSize: uint64(le.Uint32(m[8:])), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
	}
	m0, ok0 := readMeta(0)
	pageSize := int64(os.Getpagesize())
	if ok0 {
		pageSize = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(pageSize)
	if !ok0 && !ok1 {
		return damaged("raft-db-corrupt", "%s (%d bytes) is not a readable bolt database: neither meta page is valid", path, st.Size())
	}
	best := m0
	if !ok0 || (ok1 && m1.txid > m0.txid) {
		best = m1
	}
	if want := int64(best.pgid) * int64(best.pageSize); st.Size() < want {
		return damaged("raft-db-corrupt", "%s is truncated: it is %d bytes but its last transaction needs %d; a copy or a full disk cut it short", path, st.Size(), want)
	}
	return nil
}

// SnapshotInfo is what preflight learns of one snapshot on disk.
type SnapshotInfo struct {
	ID    string
	Dir   string
	Index uint64
	Term  uint64
	// Voters in the snapshot's configuration.
	Voters int
}

// checkSnapshots verifies every snapshot raft would consider: meta.json
// readable, state.bin present, of the recorded size and CRC. raft itself
// skips a snapshot whose meta is unreadable (falling back silently to an
// older one whose following log may be gone) and reports a bad CRC as
// "failed to load any existing snapshots", naming nothing.
func checkSnapshots(dir string) error {
	_, bad, err := scanSnapshots(dir)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return bad[0]
	}
	return nil
}

// scanSnapshots returns the valid snapshots, newest first, and an error
// for each damaged one.
func scanSnapshots(dir string) ([]SnapshotInfo, []error, error) {
	root := filepath.Join(dir, snapshotsDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", root, err)
	}
	var out []SnapshotInfo
	var bad []error
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // raft's own unfinished snapshots; it removes them
		}
		sdir := filepath.Join(root, e.Name())
		info, err := checkSnapshot(sdir)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		info.ID = e.Name()
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Term != out[j].Term {
			return out[i].Term > out[j].Term
		}
		return out[i].Index > out[j].Index
	})
	return out, bad, nil
}

func checkSnapshot(sdir string) (SnapshotInfo, error) {
	metaPath := filepath.Join(sdir, snapMetaFile)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return SnapshotInfo{}, damaged("snapshot-corrupt", "snapshot %s has no readable %s: %v", sdir, snapMetaFile, err)
	}
	var meta struct {
		raft.SnapshotMeta
		CRC []byte
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return SnapshotInfo{}, damaged("snapshot-corrupt", "snapshot metadata %s is not valid JSON: %v", metaPath, err)
	}
	statePath := filepath.Join(sdir, snapStateFile)
	f, err := os.Open(statePath)
	if err != nil {
		return SnapshotInfo{}, damaged("snapshot-corrupt", "snapshot %s lacks %s: %v", sdir, snapStateFile, err)
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(h, f)
	if err != nil {
		return SnapshotInfo{}, damaged("snapshot-corrupt", "read %s: %v", statePath, err)
	}
	if n != meta.Size {
		return SnapshotInfo{}, damaged("snapshot-corrupt", "snapshot file %s is %d bytes, its metadata says %d (truncated or replaced)", statePath, n, meta.Size)
	}
	if !bytes.Equal(h.Sum(nil), meta.CRC) {
		return SnapshotInfo{}, damaged("snapshot-corrupt", "snapshot file %s fails its CRC check (the bytes on disk changed after raft wrote them)", statePath)
	}
	voters := 0
	for _, s := range meta.Configuration.Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	return SnapshotInfo{Dir: sdir, Index: meta.Index, Term: meta.Term, Voters: voters}, nil
}

// lostState decides, with raft.db open, whether this node once held raft
// state and has lost its log and stable store (raft.db deleted, emptied or
// replaced by a fresh file). Evidence of a past life: the cluster-id file
// (written only after the node has seen its cluster's log) or a snapshot.
// Such a node must not bootstrap a new cluster under the old id, and as a
// member it must not vote: it may have acknowledged entries it no longer
// has, and with an empty stable store it may vote twice in one term.
func lostState(dir string, logs interface{ LastIndex() (uint64, error) }, stable interface{ GetUint64([]byte) (uint64, error) }, snaps []SnapshotInfo) error {
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("read raft log %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	term, err := stable.GetUint64([]byte("CurrentTerm"))
	if err != nil && err.Error() != "not found" {
		return fmt.Errorf("read raft stable store %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	if last > 0 || term > 0 {
		return nil
	}
	db := filepath.Join(dir, raftDBFile)
	id, _ := os.ReadFile(filepath.Join(dir, clusterIDFile))
	switch {
	case len(snaps) > 0:
		if accepted(dir, snaps[0]) {
			return nil
		}
		s := snaps[0]
		return damaged("snapshot-without-log", "%s is missing or empty but snapshot %s (index %d, term %d) is kept: every write after index %d is gone from this node, and a member without its log must not vote", db, s.Dir, s.Index, s.Term, s.Index)
	case len(id) > 0:
		if accepted(dir, SnapshotInfo{ID: acceptEmpty}) {
			return nil
		}
		return damaged("lost-raft-db", "%s is missing or empty but this node has been a member of cluster %s (%s exists): it will not bootstrap a new, empty cluster under the old id, and a member without its log must not vote", db, strings.TrimSpace(string(id)), filepath.Join(dir, clusterIDFile))
	}
	return nil
}

// accepted reports whether an operator ran 'vsm cluster forget-state
// --keep-snapshot' for exactly this snapshot.
func accepted(dir string, s SnapshotInfo) bool {
	b, err := os.ReadFile(filepath.Join(dir, acceptSnapshot))
	return err == nil && strings.TrimSpace(string(b)) == s.ID
}

// ForgetResult says what ForgetState did.
type ForgetResult struct {
	// MovedTo is where the old raft directory now lives (nothing is
	// deleted: it is the evidence, and may still be needed).
	MovedTo string
	// Kept is the snapshot the node restarts from with KeepSnapshot.
	Kept *SnapshotInfo
}

// ForgetState is the operator's way out of a damaged raft directory, with
// the node stopped: the directory is moved aside, so the node starts as a
// brand-new member (it must have been removed from the cluster first; it
// then joins as a non-voter and is promoted once caught up). With
// keepSnapshot, the newest valid snapshot is carried over and marked
// accepted, so a single-voter node restarts from it, losing only the writes
// after it; a member of a larger cluster is refused that path, because a
// member that lost its log must not vote.
func ForgetState(dir string, keepSnapshot bool, now func() string) (ForgetResult, error) {
	if _, err := os.Stat(dir); err != nil {
		return ForgetResult{}, fmt.Errorf("raft directory %s: %w", dir, err)
	}
	if err := ensureStopped(filepath.Join(dir, raftDBFile)); err != nil {
		return ForgetResult{}, err
	}
	var keep *SnapshotInfo
	if keepSnapshot {
		valid, _, err := scanSnapshots(dir)
		if err != nil {
			return ForgetResult{}, err
		}
		if len(valid) == 0 {
			return ForgetResult{}, fmt.Errorf("no valid snapshot in %s to keep; restore from a backup instead (%s#restore-from-backup)", filepath.Join(dir, snapshotsDir), Runbook)
		}
		keep = &valid[0]
		if keep.Voters > 1 {
			return ForgetResult{}, fmt.Errorf("snapshot %s comes from a cluster of %d voters: a member that lost its log must not vote, so it cannot restart from its own snapshot; remove it on a healthy member and rejoin it empty instead (%s#lost-raft-db)", keep.Dir, keep.Voters, Runbook)
		}
	}
	moved := dir + ".lost-" + now()
	if err := os.Rename(dir, moved); err != nil {
		return ForgetResult{}, fmt.Errorf("move %s aside: %w", dir, err)
	}
	res := ForgetResult{MovedTo: moved}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	// The cluster id comes along: the node stays a member of the same
	// cluster (a backup of it restores; another cluster's gossip is still
	// refused), and the marker tells the next start this empty directory
	// is the operator's choice, not another loss.
	if err := copyFile(filepath.Join(moved, clusterIDFile), filepath.Join(dir, clusterIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("carry cluster id over: %w", err)
	}
	if keep == nil {
		return res, os.WriteFile(filepath.Join(dir, acceptSnapshot), []byte(acceptEmpty+"\n"), 0o600)
	}
	if err := os.MkdirAll(filepath.Join(dir, snapshotsDir, keep.ID), 0o700); err != nil {
		return res, err
	}
	src := filepath.Join(moved, snapshotsDir, keep.ID)
	for _, name := range []string{snapMetaFile, snapStateFile} {
		if err := copyFile(filepath.Join(src, name), filepath.Join(dir, snapshotsDir, keep.ID, name)); err != nil {
			return res, fmt.Errorf("carry snapshot over: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, acceptSnapshot), []byte(keep.ID+"\n"), 0o600); err != nil {
		return res, err
	}
	kept := *keep
	kept.Dir = filepath.Join(dir, snapshotsDir, keep.ID)
	res.Kept = &kept
	return res, nil
}

// ensureStopped takes bolt's file lock on raft.db briefly: a running node
// holds it.
func ensureStopped(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if err := flockNB(f); err != nil {
		return fmt.Errorf("%s is locked: stop the node first", path)
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// clearAcceptMarker drops forget-state's marker once the node holds raft
// state again, so a later loss is judged afresh instead of accepted.
func clearAcceptMarker(dir string) {
	_ = os.Remove(filepath.Join(dir, acceptSnapshot))
}
