package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/importer"
	"github.com/vsm-project/vsm/internal/harness"
)

// BenchmarkProxy1M measures a proxy node (issue 12) against a real source
// daemon holding 1,000,000 sector locations, all real processes:
//   - catchup_s: from starting an empty proxy to its first healthy answer
//     (joined as a raft non-voter, the whole state applied);
//   - rss_MB, peak_MB: the proxy's resident memory then, and its peak;
//   - lag_p50_ms, lag_p99_ms: for 300 probe writes, from the source's
//     acknowledgement to the location being readable on the proxy, while a
//     steady background stream (100-location batches, about 100 a second)
//     updates other sectors.
//
// Run: go test -run XXX -bench BenchmarkProxy1M -benchtime 1x -timeout 20m ./e2e
func BenchmarkProxy1M(b *testing.B) {
	const total = 1_000_000
	locs := make([]fsm.SectorLocation, total)
	for i := range locs {
		locs[i] = expectedLocation(i)
	}
	for i := 0; i < b.N; i++ {
		src := harness.NewNode(b, "source")
		src.RunArgs = []string{"--bootstrap"}
		src.Start()
		src.WaitHealthy(setupBound(b, 20*time.Second))
		src.MustRun("miner", "add", "t01000", "--sector-size", "32GiB")
		src.MustRun("miner", "add", "t01001", "--sector-size", "32GiB")
		src.MustRun("storage", "add", "store-a", "--path", "/mnt/a")
		src.MustRun("storage", "add", "store-b", "--path", "/mnt/b")
		sc := src.Client(src.Token())
		put := func(ctx context.Context, batch []fsm.SectorLocation) error {
			return sc.Call(ctx, "VSM.SectorLocationPut", nil, batch)
		}
		if done, err := importer.Send(context.Background(), put, locs, 10_000, 4, nil); err != nil || done != total {
			b.Fatalf("import into the source: %d %v", done, err)
		}

		b.ResetTimer()
		start := time.Now()
		proxy := harness.NewNode(b, "proxy")
		proxy.RunArgs = []string{"--proxy=" + src.API, "--listen", proxy.API, "--conf-dir", src.Home}
		proxy.Start()
		proxy.WaitHealthy(10 * time.Minute)
		catchUp := time.Since(start)
		b.StopTimer()
		rss, peak := procMemMB(b, proxy.Pid())
		var n int
		if err := proxy.Client(proxy.Token()).Call(context.Background(), "VSM.SectorLocationCount", &n, 1000); err != nil || n != total/2 {
			b.Fatalf("the proxy holds %d locations of t01000 after catching up, want %d: %v", n, total/2, err)
		}

		lags := proxyLags(b, src, proxy, 300)
		b.ReportMetric(catchUp.Seconds(), "catchup_s")
		b.ReportMetric(rss, "rss_MB")
		b.ReportMetric(peak, "peak_MB")
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag_p50_ms")
		b.ReportMetric(float64(percentile(lags, 0.99).Microseconds())/1000, "lag_p99_ms")
		proxy.Kill()
		src.Kill()
	}
}

// proxyLags writes probes on the source one by one under a background
// stream of other writes and times each probe's visibility on the proxy.
func proxyLags(b *testing.B, src, proxy *harness.Node, probes int) []time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, pc := src.Client(src.Token()), proxy.Client(proxy.Token())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the steady stream: re-put existing sectors of t01001
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for k := 0; ; k++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			batch := make([]fsm.SectorLocation, 100)
			for j := range batch {
				batch[j] = expectedLocation(2*((k*100+j)%500_000) + 1)
				batch[j].Upgraded = k%2 == 0
			}
			_ = sc.Call(ctx, "VSM.SectorLocationPut", nil, batch)
		}
	}()
	var lags []time.Duration
	for p := 0; p < probes; p++ {
		loc := expectedLocation(2 * (600_000 + p)) // a new sector of t01000
		loc.Upgraded = false
		if err := sc.Call(ctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			var got fsm.SectorLocation
			if err := pc.Call(ctx, "VSM.SectorLocationGet", &got, loc.SectorID); err == nil {
				break
			}
			if time.Since(acked) > 10*time.Second {
				b.Fatalf("probe %d not on the proxy 10 s after the source acknowledged it", p)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lags = append(lags, time.Since(acked))
	}
	cancel()
	wg.Wait()
	slices.Sort(lags)
	return lags
}

// procMemMB reads a process's resident and peak resident memory.
func procMemMB(b *testing.B, pid int) (rss, peak float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}
