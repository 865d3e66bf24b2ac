package scheduler

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/fsm"
)

// TestSchedulerReportsUnplaced: deadlines the cluster has no room for are
// logged once (WARN) when they become unplaced, not every round, counted in
// vsm_scheduler_unplaced_deadlines, and logged again (INFO) when a new node
// gives them an owner.
func TestSchedulerReportsUnplaced(t *testing.T) {
	ctx := context.Background()
	f := fsm.New(nil)
	if r := f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: true}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	// 3 partitions of 10 minutes per deadline: 0.83 of a GPU through each
	// 36-minute window. Consecutive windows overlap, so one GPU takes only
	// every other deadline.
	var three [48]int
	for i := range three {
		three[i] = 3
	}
	chain := &fakeChain{head: 5000, periodStart: map[uint64]int64{1000: 17}, parts: map[uint64][48]int{1000: three}}
	capa := cluster.Capacity{GPUs: 1, Children: 1, ChildrenReady: 1, SecondsPerPartition: 600}
	h := &fakeHost{f: f, members: []cluster.Member{{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: capa}, State: "alive"}}}
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	s := NewScheduler(h, chain, SchedulerConfig{Logger: zap.New(core), Metrics: reg})
	gauge := func() float64 { return gathered(t, reg, "vsm_scheduler_unplaced_deadlines") }

	res, err := s.Round(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	unplaced, full := len(res.Plan.Unplaced), noCapacity(res.Plan.Unplaced)
	warned := logs.FilterMessage("scheduler: deadline has no fitting owner").Len()
	if full < 10 || warned != unplaced || gauge() != float64(unplaced) {
		t.Fatalf("%d unplaced (%d for capacity), %d warnings, gauge %v", unplaced, full, warned, gauge())
	}
	if lb := gathered(t, reg, "vsm_scheduler_lower_bound"); lb <= 0 {
		t.Fatalf("lower bound gauge %v", lb)
	}

	// Nothing changed: no new warnings.
	if _, err := s.Round(ctx, h); err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterMessage("scheduler: deadline has no fitting owner").Len(); n != warned {
		t.Fatalf("an unchanged round logged %d more warnings", n-warned)
	}

	// A second node: everything fits (but a window open now that is too
	// late for anyone); each deadline is logged as placed.
	h.members = append(h.members, cluster.Member{Meta: cluster.Meta{ID: "b", Poster: true, Capacity: capa}, State: "alive"})
	res, err = s.Round(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if n := noCapacity(res.Plan.Unplaced); n != 0 || gauge() != float64(len(res.Plan.Unplaced)) {
		t.Fatalf("with two nodes: %d unplaced for capacity, %+v, gauge %v", n, res.Plan.Unplaced, gauge())
	}
	if n := logs.FilterMessage("scheduler: deadline has a fitting owner again").Len(); n != unplaced-len(res.Plan.Unplaced) {
		t.Fatalf("%d 'fitting owner again' logs, want %d", n, unplaced-len(res.Plan.Unplaced))
	}
}

// gathered sums the samples of a gauge family in reg.
func gathered(t *testing.T, reg *prometheus.Registry, family string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() == family {
			for _, m := range f.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func noCapacity(us []schedule.Unplaced) int {
	n := 0
	for _, u := range us {
		if u.Reason == schedule.UnplacedNoCapacity {
			n++
		}
	}
	return n
}
