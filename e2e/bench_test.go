package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/importer"
	"github.com/vsm-project/vsm/internal/harness"
)

// BenchmarkImport1M imports 1,000,000 locations into a real single-node
// daemon over HTTP JSON-RPC, in the CLI's default batches and parallelism.
// setupBound is how long a helper waits for a set-up condition (a node
// healthy, a leader elected, a schedule in place). A test keeps d and fails
// fast. A benchmark gets at least benchSetupBound: its set-up is not what it
// measures, and `make bench` also runs on busy machines (2 shared cores),
// where starting 3 nodes and 6 children takes minutes.
func setupBound(t testing.TB, d time.Duration) time.Duration {
	if _, ok := t.(*testing.B); ok {
		return max(d, benchSetupBound)
	}
	return d
}

const benchSetupBound = 5 * time.Minute

func BenchmarkImport1M(b *testing.B) {
	const total = 1_000_000
	locs := make([]fsm.SectorLocation, total)
	for i := range locs {
		locs[i] = expectedLocation(i)
	}
	for i := 0; i < b.N; i++ {
		n := harness.NewNode(b, "bench")
		n.RunArgs = []string{"--bootstrap"}
		n.Start()
		n.WaitHealthy(setupBound(b, 20*time.Second))
		n.MustRun("miner", "add", "t01000", "--sector-size", "32GiB")
		n.MustRun("miner", "add", "t01001", "--sector-size", "32GiB")
		n.MustRun("storage", "add", "store-a", "--path", "/mnt/a")
		n.MustRun("storage", "add", "store-b", "--path", "/mnt/b")
		cl := n.Client(n.Token())
		put := func(ctx context.Context, batch []fsm.SectorLocation) error {
			return cl.Call(ctx, "VSM.SectorLocationPut", nil, batch)
		}
		b.ResetTimer()
		start := time.Now()
		done, err := importer.Send(context.Background(), put, locs, 10_000, 4, nil)
		elapsed := time.Since(start)
		b.StopTimer()
		if err != nil || done != total {
			b.Fatalf("imported %d: %v", done, err)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "locations/s")
		b.ReportMetric(elapsed.Seconds(), "seconds")
		n.Kill()
	}
}
