package prover_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/prover"
)

// BenchmarkSupervisorRoundTrip measures one empty WindowPoSt request (a
// partition with no sectors) from Prove through a real `vsm wdpost` child
// and back: JSON encoding, the pipes, the child's decode and answer, and the
// dispatch bookkeeping. It reports the median and 99th percentile.
func BenchmarkSupervisorRoundTrip(b *testing.B) {
	bin := buildVSM(b)
	block := prover.ProcessorConfig{Bin: bin, Args: []string{"--log-level", "warn", "wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 10}
	sup, err := prover.NewSupervisor(prover.Config{WdPost: []prover.ProcessorConfig{block}}, prover.Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := sup.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sup.Close(ctx) }()
	task := prover.WindowPoStTask{MinerID: 1000, ProofType: "StackedDrgWindow2KiBV1_2", Replicas: []prover.Replica{}}
	for range 100 { // warm up the child and both sides' buffers
		if _, err := sup.Prove(ctx, task); err != nil {
			b.Fatal(err)
		}
	}
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := sup.Prove(ctx, task); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds())/1e3, "median-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds())/1e3, "p99-µs")
}
