package gateway

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkComputeProofRoundTrip is what the gateway path adds to a
// WinningPoSt: ComputeProof from the hub over a loopback websocket to a
// listener, the handler, and ResponseProofEvent back, against the handler
// called directly (baseline), 200 requests each. It prints min, median and
// max per request; the proof itself (the handler here answers at once) is
// the children's time and comes on top.
func BenchmarkComputeProofRoundTrip(b *testing.B) {
	const requests = 200
	h := &fakeHandler{}
	run := func(b *testing.B, one func(i int) error) {
		for range b.N {
			samples := make([]time.Duration, 0, requests)
			for i := range requests {
				start := time.Now()
				if err := one(i); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(start))
			}
			slices.Sort(samples)
			b.ReportMetric(float64(samples[0].Nanoseconds())/1e3, "min-µs")
			b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds())/1e3, "median-µs")
			b.ReportMetric(float64(samples[len(samples)-1].Nanoseconds())/1e3, "max-µs")
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func(i int) error {
			_, err := h.ComputeProof(context.Background(), 1000, ComputeProofRequest{Height: 1})
			return err
		})
	})
	b.Run("gateway", func(b *testing.B) {
		f := newHubFixture(b)
		f.hub.log = zap.NewNop()
		f.quiet = true
		f.listenAs(b, "bench", h, f.info)
		f.waitConnected(b)
		run(b, func(i int) error {
			_, ans, err := f.hub.ComputeProof(context.Background(), maddr, ComputeProofRequest{Height: 1})
			if err == nil && ans.Attempts != 1 {
				err = fmt.Errorf("request %d took %d attempts", i, ans.Attempts)
			}
			return err
		})
	})
}
