package e2e

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness"
)

// saturateFor is how long BenchmarkElectionsUnderSaturation runs: 20 s
// unless VSM_BENCH_SATURATE (a Go duration) says otherwise; make bench
// gives 10m.
func saturateFor(b *testing.B) time.Duration {
	v := os.Getenv("VSM_BENCH_SATURATE")
	if v == "" {
		return 20 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("VSM_BENCH_SATURATE=%q: give a positive Go duration such as 10m", v)
	}
	return d
}

// burnCPU starts one spinning process per core (a shell loop, a process
// of its own beside the daemons) until ctx ends.
func burnCPU(ctx context.Context, b *testing.B) {
	for i := 0; i < runtime.NumCPU(); i++ {
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
		if err := cmd.Start(); err != nil {
			b.Fatalf("start CPU burner: %v", err)
		}
		go func() { _ = cmd.Wait() }()
	}
}

// maxTerm is the highest raft term any node reports; every election,
// won or not, raises it (a failed pre-vote does not).
func maxTerm(b *testing.B, nodes []*harness.Node) uint64 {
	var term uint64
	for _, n := range nodes {
		st, err := status(b, n)
		if err != nil {
			b.Fatalf("status of %s: %v", n.ID, err)
		}
		term = max(term, st.Term)
	}
	return term
}

// BenchmarkElectionsUnderSaturation runs a 3-node cluster with the default
// raft timeouts under a stream of writes while both cores are saturated by
// CPU burners, and counts the elections (raft term increases) and leader
// changes seen meanwhile: with no node down, every one is spurious.
func BenchmarkElectionsUnderSaturation(b *testing.B) {
	d := saturateFor(b)
	for i := 0; i < b.N; i++ {
		nodes := startCluster(b, 3)
		leader, clients := seedWriteTarget(b, nodes)
		before := maxTerm(b, nodes)
		ctx, cancel := context.WithTimeout(context.Background(), d)
		burnCPU(ctx, b)
		w := &writer{first: map[uint64]time.Time{}}
		wg := w.start(ctx, 4, clients)
		changes := countLeaderChanges(ctx, b, nodes[0], leader.ID)
		cancel()
		wg.Wait()
		elections := maxTerm(b, nodes) - before
		b.ReportMetric(float64(elections), "elections")
		b.ReportMetric(float64(changes), "leader-changes")
		b.ReportMetric(float64(len(w.acked))/d.Seconds(), "acked-writes/s")
		b.ReportMetric(d.Seconds(), "seconds")
		for _, n := range nodes {
			n.Kill()
		}
	}
}

// countLeaderChanges samples observer's view of the leader until ctx ends.
func countLeaderChanges(ctx context.Context, b *testing.B, observer *harness.Node, leader string) int {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	changes := 0
	for {
		select {
		case <-ctx.Done():
			return changes
		case <-t.C:
		}
		st, err := status(b, observer)
		if err == nil && st.LeaderID != "" && st.LeaderID != leader {
			b.Logf("leader changed from %s to %s (term %d)", leader, st.LeaderID, st.Term)
			changes, leader = changes+1, st.LeaderID
		}
	}
}
