package schedule

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// workload describes a random cluster for property tests and benchmarks.
type workload struct {
	miners   int
	nodes    int
	gpus     [2]int  // GPUs per node, uniform in [lo, hi]
	nonEmpty float64 // probability that a deadline has partitions
	maxParts int     // partitions of a non-empty deadline, uniform in [1, maxParts]
	perPart  time.Duration
}

func (w workload) input(seed uint64) Input {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	in := Input{Now: Epoch(3_000_000 + r.IntN(PeriodEpochs))}
	for i := range w.miners {
		m := Miner{ID: uint64(1000 + i), PeriodStart: Epoch(r.IntN(PeriodEpochs))}
		for d := range m.Partitions {
			if r.Float64() < w.nonEmpty {
				m.Partitions[d] = 1 + r.IntN(w.maxParts)
			}
		}
		in.Miners = append(in.Miners, m)
	}
	for i := range w.nodes {
		in.Nodes = append(in.Nodes, Node{
			ID:            fmt.Sprintf("node-%04d", i),
			GPUs:          w.gpus[0] + r.IntN(w.gpus[1]-w.gpus[0]+1),
			PartitionTime: w.perPart,
			Alive:         true,
		})
	}
	return in
}

// benchWorkload is the scale: 10,000 miners x 48 deadlines over
// 250 nodes x 4 GPUs = 1,000 GPUs, 32 GiB partitions at 4 min on a 3090.
// A fifth of the deadlines hold 1-4 partitions: about 2/3 of all GPU time
// is needed on average, more at the busiest moment.
var benchWorkload = workload{miners: 10_000, nodes: 250, gpus: [2]int{4, 4}, nonEmpty: 0.15, maxParts: 4, perPart: 4 * time.Minute}

func mustCompute(tb testing.TB, in Input) Plan {
	tb.Helper()
	p, err := Compute(in)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
