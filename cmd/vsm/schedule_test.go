package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/rpc"
)

// TestPrintLoads: a devnet node whose 2 KiB partitions take a millisecond
// owns a few milliseconds of GPU time a day, which the old "%.2f" GPU-hours
// and peak columns printed as 0.00; a node without a measured speed is
// labelled as assumed; the lower bound is stated with the busiest share.
func TestPrintLoads(t *testing.T) {
	v := rpc.ScheduleView{LowerBound: 0.25, PeakUtilization: 0.275, Nodes: []schedule.NodeLoad{
		{ID: "n1", GPUs: 1, Eligible: true, Deadlines: 64, Partitions: 48, Peak: 1e-6, GPUHours: 48 * float64(time.Millisecond) / float64(time.Hour), PartitionTime: time.Millisecond},
		{ID: "n2", GPUs: 4, Eligible: true, Deadlines: 60, Partitions: 30, Peak: 1.1, GPUHours: 2.5, PartitionTime: 5 * time.Minute, SpeedAssumed: true},
	}}
	var b strings.Builder
	if err := printLoads(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"lower bound 25% of all usable GPUs", "busiest node 27.5%, 1.10x the bound",
		"1ms", "48ms", "0.0001%", // n1: per partition, GPU time, peak share, none of them zero
		"5m0s (assumed)", "2h30m0s", "27.5%", "(assumed): the node has not measured a proof yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
