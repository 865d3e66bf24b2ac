package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/importer"
	"github.com/vsm-project/vsm/internal/harness"
)

// genLocations yields expectedLocation(0..n-1), each with the given
// storage instances swapped when swap is set: a generator, so the bench
// process itself never holds millions of records.
type genLocations struct {
	i, n int
	swap bool
}

func (g *genLocations) Next() (fsm.SectorLocation, error) {
	if g.i == g.n {
		return fsm.SectorLocation{}, io.EOF
	}
	l := expectedLocation(g.i)
	if g.swap {
		l.Sealed, l.Cache = l.Cache, l.Sealed
	}
	g.i++
	return l, nil
}

// memberFootprint is what a member uses: memory from /proc, the raft log's
// files and the newest snapshot on disk.
type memberFootprint struct {
	rssMB, peakMB     float64
	logMB, snapshotMB float64
}

func footprint(b *testing.B, n *harness.Node) memberFootprint {
	var f memberFootprint
	f.rssMB, f.peakMB = procMemMB(b, n.Pid())
	dir := filepath.Join(n.Home, "raft")
	// The log's files: raft.db (the stable store, and the log with
	// LogStore = "bolt") and the WAL's segments.
	files, _ := filepath.Glob(filepath.Join(dir, "wal", "*"))
	for _, p := range append(files, filepath.Join(dir, "raft.db")) {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			f.logMB += float64(st.Size()) / (1 << 20)
		}
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	var newest time.Time
	for _, s := range snaps {
		if st, err := os.Stat(s); err == nil && st.ModTime().After(newest) {
			newest, f.snapshotMB = st.ModTime(), float64(st.Size())/(1<<20)
		}
	}
	return f
}

func (f memberFootprint) report(b *testing.B, sectors int, stage string) {
	b.ReportMetric(f.rssMB*(1<<20)/float64(sectors), stage+"_rss_B/sector")
	b.ReportMetric(f.peakMB*(1<<20)/float64(sectors), stage+"_peak_B/sector")
	b.ReportMetric(f.logMB, stage+"_log_MB")
	b.ReportMetric(f.snapshotMB, stage+"_snapshot_MB")
	b.ReportMetric(f.logMB/max(f.snapshotMB, 1e-9), stage+"_log/snapshot")
	fmt.Printf("%s %d sectors: member RSS %.0f MB (%.0f B/sector), peak %.0f MB (%.0f B/sector); raft log files %.1f MB, newest snapshot %.1f MB (log/snapshot %.2f)\n",
		stage, sectors, f.rssMB, f.rssMB*(1<<20)/float64(sectors), f.peakMB, f.peakMB*(1<<20)/float64(sectors), f.logMB, f.snapshotMB, f.logMB/max(f.snapshotMB, 1e-9))
}

// settle gives the member time to take the snapshot its log size calls for
// and the Go runtime time to return freed memory, as an idle member would.
const settle = 10 * time.Second

// benchmarkMemberFootprint imports sectors locations into a real
// single-node daemon with the real CLI from a JSON-lines file (batches of
// 10,000, 4 in flight) and reports the client's peak memory; then it
// simulates a day of updates: every sector's location put once more with
// its sealed and cache instances swapped, in batches of 1,000 (as a
// storage migration would move them). After each it reports the member's
// resident memory per sector, its peak, and the raft log file's size
// against the newest snapshot's.
func benchmarkMemberFootprint(b *testing.B, sectors int) {
	for i := 0; i < b.N; i++ {
		n := harness.NewNode(b, "member")
		n.RunArgs = []string{"--bootstrap"}
		n.Start()
		n.WaitHealthy(20 * time.Second)
		prepareImportNode(n)
		file := filepath.Join(b.TempDir(), "locs.jsonl")
		writeLocationsFile(b, file, sectors)
		start := time.Now()
		client := importPeakMB(b, n, file, nil)
		b.ReportMetric(time.Since(start).Seconds(), "import_s")
		b.ReportMetric(client, "client_peak_MB")
		fmt.Printf("vsm sector location import of %d lines (%s): client peak RSS %.0f MB\n", sectors, fileSize(b, file), client)
		os.Remove(file)
		cl := n.Client(n.Token())
		put := func(ctx context.Context, batch []fsm.SectorLocation) error {
			return cl.Call(ctx, "VSM.SectorLocationPut", nil, batch)
		}
		ctx := context.Background()
		time.Sleep(settle)
		footprint(b, n).report(b, sectors, "import")

		start = time.Now()
		plan, err := importer.Validate(&genLocations{n: sectors, swap: true}, 1_000)
		if err != nil {
			b.Fatal(err)
		}
		if done, err := importer.SendFrom(ctx, put, &genLocations{n: sectors, swap: true}, plan, 4, nil); err != nil || done != sectors {
			b.Fatalf("updates: %d %v", done, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "updates_s")
		time.Sleep(settle)
		footprint(b, n).report(b, sectors, "day")
		n.Kill()
	}
}

func fileSize(b *testing.B, path string) string {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("%.0f MB", float64(st.Size())/(1<<20))
}

// BenchmarkMemberFootprint1M and 10M (issue 11 item 10): a member's
// resident memory per sector and its raft log against its snapshot.
//
// Run: go test -run XXX -bench 'MemberFootprint' -benchtime 1x -timeout 60m ./e2e
func BenchmarkMemberFootprint1M(b *testing.B)  { benchmarkMemberFootprint(b, 1_000_000) }
func BenchmarkMemberFootprint10M(b *testing.B) { benchmarkMemberFootprint(b, 10_000_000) }
