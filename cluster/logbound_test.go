package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vsm-project/vsm/fsm"
)

func TestSizedLogStoreTracksBytes(t *testing.T) {
	entry := func(i uint64, n int) *raft.Log { return &raft.Log{Index: i, Data: make([]byte, n)} }
	size := func(n int) uint64 { return uint64(n + logEntryOverhead) }
	tests := []struct {
		name string
		do   func(s *sizedLogStore) error
		want uint64
	}{
		{"append", func(s *sizedLogStore) error { return nil }, 10 * size(100)},
		{"compact a prefix", func(s *sizedLogStore) error { return s.DeleteRange(1, 4) }, 6 * size(100)},
		{"drop a suffix", func(s *sizedLogStore) error { return s.DeleteRange(8, 10) }, 7 * size(100)},
		{"overwrite a suffix", func(s *sizedLogStore) error {
			return s.StoreLogs([]*raft.Log{entry(9, 1000), entry(10, 1000)})
		}, 8*size(100) + 2*size(1000)},
		{"gap after a snapshot install", func(s *sizedLogStore) error {
			if err := s.DeleteRange(1, 10); err != nil {
				return err
			}
			return s.StoreLog(entry(500, 7))
		}, size(7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := raft.NewInmemStore()
			s, err := newSizedLogStore(mem)
			if err != nil {
				t.Fatal(err)
			}
			for i := uint64(1); i <= 10; i++ {
				if err := s.StoreLog(entry(i, 100)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.do(s); err != nil {
				t.Fatal(err)
			}
			if got := s.Bytes(); got != tt.want {
				t.Fatalf("bytes %d, want %d", got, tt.want)
			}
			// A restart sizes what the store holds the same way.
			again, err := newSizedLogStore(mem)
			if err != nil {
				t.Fatal(err)
			}
			if got := again.Bytes(); got != tt.want {
				t.Fatalf("after reopening: bytes %d, want %d", got, tt.want)
			}
		})
	}
}

// TestRaftLogStaysNearSnapshotSize (issue 11 item 10): raft snapshots and
// trims its log by entry count, so a few hundred large import batches
// never triggered a snapshot and raft.db grew without bound (490 MB seen,
// 6 GB possible). Through a real node with on-disk stores: 200,000
// locations in batches of 1,000, then every location updated twice over
// (30 MB of log). With the log in raft.db, the file must end within twice
// the newest snapshot's size. With the WAL, the entries must stay within
// the same bound and the files within it plus two preallocated segments
// (the one being written, and the oldest, which goes once all of it is
// compacted away).
func TestRaftLogStaysNearSnapshotSize(t *testing.T) {
	for _, store := range []string{LogStoreBolt, LogStoreWAL} {
		t.Run(store, func(t *testing.T) { testRaftLogStaysNearSnapshotSize(t, store) })
	}
}

func testRaftLogStaysNearSnapshotSize(t *testing.T, store string) {
	dir := t.TempDir()
	ctx := context.Background()
	n, err := Open(Config{NodeID: "n1", Dir: dir, RaftAddr: "127.0.0.1:0", Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		SnapshotLogBytes: 1 << 20, LogStore: store})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	waitClusterID(t, n)
	for _, c := range []fsm.Command{
		fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}},
		fsm.PutStorage{Instance: fsm.StorageInstance{Name: "store-a"}},
		fsm.PutStorage{Instance: fsm.StorageInstance{Name: "store-b"}},
	} {
		if _, err := n.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	const sectors, batch = 200_000, 1_000
	written := 0
	for round := 0; round < 3; round++ {
		for start := 0; start < sectors; start += batch {
			locs := make([]fsm.SectorLocation, batch)
			for i := range locs {
				locs[i] = fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: uint64(start + i)},
					Sealed: []string{"store-a", "store-b"}[round%2], Cache: "store-a", SealProof: 1}
				locs[i].CommR[0], locs[i].CommR[1] = byte(i), byte(round)
			}
			data := fsm.Encode(fsm.PutLocations{Locations: locs})
			written += len(data)
			if _, err := n.ApplyRaw(ctx, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := n.FSM().SectorCount(1000); got != sectors {
		t.Fatalf("%d sectors, want %d", got, sectors)
	}
	waitFor := time.Now().Add(15 * time.Second)
	for n.sized.Bytes() > n.logBudget() && time.Now().Before(waitFor) {
		time.Sleep(50 * time.Millisecond)
	}
	snap := newestSnapshotSize(t, dir)
	file := filesSize(t, filepath.Join(dir, raftDBFile), filepath.Join(dir, walDir, "*"))
	// Operators see the same through /metrics.
	for kind, want := range map[string]uint64{"file": uint64(file), "entries": n.sized.Bytes(), "budget": max(1<<20, uint64(snap)/2)} {
		if got := gauge(t, n, "vsm_raft_log_bytes", kind); got != float64(want) {
			t.Errorf("vsm_raft_log_bytes{kind=%q} = %v, want %d", kind, got, want)
		}
	}
	t.Logf("wrote %.1f MB of log entries; log files %.1f MB, newest snapshot %.1f MB, log holds %.1f MB",
		float64(written)/(1<<20), float64(file)/(1<<20), float64(snap)/(1<<20), float64(n.sized.Bytes())/(1<<20))
	slack := int64(0)
	if store == LogStoreWAL {
		slack = 2 * walSegmentBytes
		if got := int64(n.sized.Bytes()); snap == 0 || got > 2*snap {
			t.Fatalf("the log's entries hold %d bytes, want at most twice the newest snapshot (%d bytes)", got, snap)
		}
	}
	if snap == 0 || file > 2*snap+slack {
		t.Fatalf("the log's files take %d bytes, want at most twice the newest snapshot (%d bytes) plus %d", file, snap, slack)
	}
}

// filesSize is the total size of the regular files matching the patterns.
func filesSize(t *testing.T, patterns ...string) int64 {
	t.Helper()
	var total int64
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
				total += st.Size()
			}
		}
	}
	return total
}

func gauge(t *testing.T, n *Node, family, kind string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{kind=%q}", family, kind)
	return 0
}

func newestSnapshotSize(t *testing.T, dir string) int64 {
	t.Helper()
	metas, err := os.ReadDir(filepath.Join(dir, snapshotsDir))
	if err != nil {
		return 0
	}
	var newest time.Time
	var size int64
	for _, m := range metas {
		st, err := os.Stat(filepath.Join(dir, snapshotsDir, m.Name(), "state.bin"))
		if err == nil && st.ModTime().After(newest) {
			newest, size = st.ModTime(), st.Size()
		}
	}
	return size
}
