package cluster

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"
)

// boltWithLog makes raft.db in dir holding entries first..last and a
// current term, as a node that kept its log in bolt leaves it.
func boltWithLog(t *testing.T, dir string, first, last uint64) *raftboltdb.BoltStore {
	t.Helper()
	b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftDBFile), BoltOptions: boltOptions()})
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := first; i <= last && last > 0; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: []byte{byte(i), byte(i >> 8)}})
	}
	if len(logs) > 0 {
		if err := b.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	return b
}

// movedHome makes a home whose log (entries 1..5, term 3) has been moved
// to wal/, and returns its raft.db, still open.
func movedHome(t *testing.T, dir string) *raftboltdb.BoltStore {
	t.Helper()
	b := boltWithLog(t, dir, 1, 5)
	_, c, err := openTestLogStore(dir, LogStoreWAL, b)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return b
}

// onDisk is what a refused open must leave as it found: every file under
// wal/ with its content, raft.db's log bounds, mark and both terms.
func onDisk(t *testing.T, dir string, b *raftboltdb.BoltStore) string {
	t.Helper()
	var out strings.Builder
	files, _ := filepath.Glob(filepath.Join(dir, walDir, "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s %d %x\n", filepath.Base(f), len(data), sha256.Sum256(data))
	}
	first, last, err := logBounds(b)
	mark, _ := getUint64(b, logStoreKey)
	term, _ := getUint64(b, "CurrentTerm")
	walTerm, _ := getUint64(b, walStablePrefix+"CurrentTerm")
	fmt.Fprintf(&out, "raft.db log %d..%d (%v) mark %d term %d wal term %d", first, last, err, mark, term, walTerm)
	return out.String()
}

func openTestLogStore(dir, kind string, b *raftboltdb.BoltStore) (raft.LogStore, io.Closer, error) {
	return openTestLogStoreSnap(dir, kind, b, 0)
}

func openTestLogStoreSnap(dir, kind string, b *raftboltdb.BoltStore, snapIndex uint64) (raft.LogStore, io.Closer, error) {
	s, err := openLogStore(dir, kind, b, snapIndex, hclog.NewNullLogger(), zap.NewNop())
	if err != nil {
		return nil, nil, err
	}
	if s.closer == nil {
		return s.logs, io.NopCloser(nil), nil
	}
	return s.logs, s.closer, nil
}

// requireLog asserts that s holds exactly entries first..last, each as
// boltWithLog wrote it.
func requireLog(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	f, l, err := logBounds(s)
	if err != nil || f != first || l != last {
		t.Fatalf("log holds %d..%d (%v), want %d..%d", f, l, err, first, last)
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if got.Index != i || got.Term != 3 || string(got.Data) != string([]byte{byte(i), byte(i >> 8)}) {
			t.Fatalf("entry %d is %+v", i, got)
		}
	}
}

// TestLogStoreMigratesBoltLogToWAL: a node whose log is in raft.db starts
// with the WAL: every entry moves to wal/ (more than one copy batch, not
// starting at 1, as after compaction), raft.db keeps its term but no
// entries, and a restart finds the same log without copying again.
func TestLogStoreMigratesBoltLogToWAL(t *testing.T) {
	dir := t.TempDir()
	b := boltWithLog(t, dir, 7, 7+2*walBatch+10)
	defer b.Close()
	s, c, err := openTestLogStore(dir, LogStoreWAL, b)
	if err != nil {
		t.Fatal(err)
	}
	requireLog(t, s, 7, 7+2*walBatch+10)
	if _, last, _ := logBounds(b); last != 0 {
		t.Fatalf("raft.db still holds entries up to %d after the move", last)
	}
	// The term moved with the log: a version that keeps its log in
	// raft.db finds neither there and refuses to start.
	if term, err := b.GetUint64([]byte(walStablePrefix + "CurrentTerm")); err != nil || term != 3 {
		t.Fatalf("the WAL's term in raft.db is %d (%v), want 3", term, err)
	}
	if term, err := getUint64(b, "CurrentTerm"); err != nil || term != 0 {
		t.Fatalf("raft.db's own term is %d (%v) after the move, want 0", term, err)
	}
	if mark, _ := getUint64(b, logStoreKey); mark != markMoved {
		t.Fatalf("mark %d, want %d", mark, markMoved)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 8 + 2*walBatch + 10, Term: 3, Data: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s, c, err = openTestLogStore(dir, LogStoreWAL, b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if f, l, _ := logBounds(s); f != 7 || l != 8+2*walBatch+10 {
		t.Fatalf("after a restart the log holds %d..%d", f, l)
	}
	if _, err := os.Stat(filepath.Join(dir, walMigratingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the scratch directory is left behind: %v", err)
	}
}

// TestLogStoreMoveSurvivesCrashes: a crash during the move leaves either
// a scratch directory (the move starts over from raft.db, which is
// intact) or a complete wal/ with raft.db's copy not yet deleted (the copy
// is dropped). Either way the log ends whole, once.
func TestLogStoreMoveSurvivesCrashes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, dir string, b *raftboltdb.BoltStore)
	}{
		{"during the copy", func(t *testing.T, dir string, _ *raftboltdb.BoltStore) {
			tmp := filepath.Join(dir, walMigratingDir)
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmp, "00000000000000000001-0000000000000001.wal"), []byte("half a segment"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the rename, before the mark", func(t *testing.T, dir string, b *raftboltdb.BoltStore) {
			if _, err := migrateToWAL(dir, b, 1, 300, 0, hclog.NewNullLogger()); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the mark, before raft.db's copy is dropped", func(t *testing.T, dir string, b *raftboltdb.BoltStore) {
			if _, err := migrateToWAL(dir, b, 1, 300, 0, hclog.NewNullLogger()); err != nil {
				t.Fatal(err)
			}
			if err := b.SetUint64([]byte(walStablePrefix+"CurrentTerm"), 3); err != nil {
				t.Fatal(err)
			}
			if err := b.SetUint64([]byte(logStoreKey), markMoving); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := boltWithLog(t, dir, 1, 300)
			defer b.Close()
			tc.crash(t, dir, b)
			s, c, err := openTestLogStore(dir, LogStoreWAL, b)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			requireLog(t, s, 1, 300)
			if _, last, _ := logBounds(b); last != 0 {
				t.Fatalf("raft.db still holds entries up to %d", last)
			}
			if term, _ := getUint64(b, walStablePrefix+"CurrentTerm"); term != 3 {
				t.Fatalf("the WAL's term is %d, want 3", term)
			}
			if term, _ := getUint64(b, "CurrentTerm"); term != 0 {
				t.Fatalf("raft.db's own term is %d, want 0", term)
			}
		})
	}
}

// TestLogStoreRefusals: the cases where opening the log must stop with an
// error that says what is wrong and what to do, touching nothing: the
// files under wal/ and raft.db's raft state are as they were.
func TestLogStoreRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		// prepare leaves dir as the case needs and returns the kind to open.
		prepare func(t *testing.T, dir string) string
		want    []string
	}{
		{"bolt asked for, log already in wal/", func(t *testing.T, dir string) string {
			b := movedHome(t, dir)
			b.Close()
			return LogStoreBolt
		}, []string{"does not move a log back", `LogStore = "wal"`}},
		{"wal/ deleted", func(t *testing.T, dir string) string {
			b := movedHome(t, dir)
			b.Close()
			if err := os.RemoveAll(filepath.Join(dir, walDir)); err != nil {
				t.Fatal(err)
			}
			return LogStoreWAL
		}, []string{"wal is missing", "must not vote", "#lost-raft-db"}},
		{"raft.db replaced by an empty one", func(t *testing.T, dir string) string {
			b := movedHome(t, dir)
			b.Close()
			if err := os.Remove(filepath.Join(dir, raftDBFile)); err != nil {
				t.Fatal(err)
			}
			return LogStoreWAL
		}, []string{"raft.db is missing or empty", "holds entries up to index 5", "#lost-raft-db"}},
		{"wal-meta.db deleted (raft-wal would start an empty log)", func(t *testing.T, dir string) string {
			b := movedHome(t, dir)
			b.Close()
			if err := os.Remove(filepath.Join(dir, walDir, "wal-meta.db")); err != nil {
				t.Fatal(err)
			}
			return LogStoreWAL
		}, []string{"wal-meta.db is missing", "must not vote", "#lost-raft-db"}},
		{"raft.db written by a version that keeps its log there", func(t *testing.T, dir string) string {
			b := movedHome(t, dir)
			if err := b.StoreLogs([]*raft.Log{{Index: 6, Term: 9, Data: []byte{6}}}); err != nil {
				t.Fatal(err)
			}
			b.Close()
			return LogStoreWAL
		}, []string{"holds raft state of its own", "neither log is complete", "#lost-raft-db"}},
		{"a hole in raft.db's log above the newest snapshot", func(t *testing.T, dir string) string {
			b := boltWithLog(t, dir, 1, 20)
			if err := b.StoreLogs([]*raft.Log{{Index: 40, Term: 3}, {Index: 41, Term: 3}}); err != nil {
				t.Fatal(err)
			}
			b.Close()
			return LogStoreWAL // no snapshot: entries 21..39 are simply gone
		}, []string{"has no entry 39", "hole", "nothing in raft.db was changed"}},
		{"a copy in wal/ older than raft.db's log, before the mark", func(t *testing.T, dir string) string {
			b := boltWithLog(t, dir, 1, 100)
			if _, err := migrateToWAL(dir, b, 1, 100, 0, hclog.NewNullLogger()); err != nil {
				t.Fatal(err)
			}
			// An older vsm then truncated a conflicting tail and wrote
			// 90..95 in a later term.
			if err := b.DeleteRange(90, 100); err != nil {
				t.Fatal(err)
			}
			var tail []*raft.Log
			for i := uint64(90); i <= 95; i++ {
				tail = append(tail, &raft.Log{Index: i, Term: 5, Data: []byte{byte(i)}})
			}
			if err := b.StoreLogs(tail); err != nil {
				t.Fatal(err)
			}
			b.Close()
			return LogStoreWAL
		}, []string{"ends at index 100", "ends at 95", "stale", "#raft-db-corrupt"}},
		{"move interrupted, then raft.db written past it", func(t *testing.T, dir string) string {
			b := movedHome(t, dir)
			if err := b.SetUint64([]byte(logStoreKey), markMoving); err != nil {
				t.Fatal(err)
			}
			if err := b.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			b.Close()
			return LogStoreWAL
		}, []string{"holds raft state of its own", "term 7", "#lost-raft-db"}},
		{"unknown store", func(t *testing.T, dir string) string { return "rocks" }, []string{`"rocks"`, `"wal"`, `"bolt"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			kind := tc.prepare(t, dir)
			b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftDBFile), BoltOptions: boltOptions()})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			before := onDisk(t, dir, b)
			_, c, err := openTestLogStoreSnap(dir, kind, b, 0)
			if err == nil {
				c.Close()
				t.Fatal("opened; want a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := onDisk(t, dir, b); after != before {
				t.Errorf("the refused open changed the home:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestLogStoreBoltStaysBolt: with LogStore bolt a node's log stays in
// raft.db and no wal/ appears.
func TestLogStoreBoltStaysBolt(t *testing.T) {
	dir := t.TempDir()
	b := boltWithLog(t, dir, 1, 5)
	defer b.Close()
	s, c, err := openTestLogStore(dir, LogStoreBolt, b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	requireLog(t, s, 1, 5)
	if _, err := os.Stat(filepath.Join(dir, walDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("wal/ exists with LogStore bolt: %v", err)
	}
}

// TestLogStoreSnapshotGaps: entries older than the newest snapshot in
// front of a gap (what a non-monotonic bolt log keeps after a snapshot
// install) are not moved; a WAL that ends below the newest snapshot (a
// crash between an install and raft's removal of the old entries) is
// emptied, so that raft's next append is contiguous.
func TestLogStoreSnapshotGaps(t *testing.T) {
	t.Run("bolt log with entries before a snapshot install", func(t *testing.T) {
		dir := t.TempDir()
		b := boltWithLog(t, dir, 1, 20)
		defer b.Close()
		tail := []*raft.Log{{Index: 40, Term: 3, Data: []byte{40, 0}}, {Index: 41, Term: 3, Data: []byte{41, 0}}}
		if err := b.StoreLogs(tail); err != nil {
			t.Fatal(err)
		}
		s, c, err := openTestLogStoreSnap(dir, LogStoreWAL, b, 39)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		requireLog(t, s, 40, 41)
	})
	t.Run("bolt log wholly below the newest snapshot", func(t *testing.T) {
		dir := t.TempDir()
		b := boltWithLog(t, dir, 1, 5)
		defer b.Close()
		s, c, err := openTestLogStoreSnap(dir, LogStoreWAL, b, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, last, _ := logBounds(s); last != 0 {
			t.Fatalf("the moved log ends at %d, below snapshot 10", last)
		}
		if err := s.StoreLogs([]*raft.Log{{Index: 11, Term: 4}}); err != nil {
			t.Fatalf("raft's next append after the snapshot: %v", err)
		}
	})
	t.Run("WAL ending below the newest snapshot", func(t *testing.T) {
		dir := t.TempDir()
		b := movedHome(t, dir)
		defer b.Close()
		s, c, err := openTestLogStoreSnap(dir, LogStoreWAL, b, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, last, _ := logBounds(s); last != 0 {
			t.Fatalf("the WAL still ends at %d, below snapshot 10", last)
		}
		if err := s.StoreLogs([]*raft.Log{{Index: 11, Term: 4}}); err != nil {
			t.Fatalf("raft's next append after the snapshot: %v", err)
		}
	})
}

// TestLogStoreEmptyWALThenBoltWrites: a first start that crashed after
// making an empty wal/ but before marking raft.db, then raft.db written
// (by an older vsm): the empty WAL is replaced by a move of raft.db's log.
func TestLogStoreEmptyWALThenBoltWrites(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, walDir), 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := openWAL(filepath.Join(dir, walDir), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	b := boltWithLog(t, dir, 1, 30)
	defer b.Close()
	s, c, err := openTestLogStore(dir, LogStoreWAL, b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	requireLog(t, s, 1, 30)
}
