package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness"
)

// fencingDelay holds every scheduling round between its decision and its
// writes (VSM_DEBUG_SCHEDULER_WRITE_DELAY), long enough to pause a leader
// inside it and elect another.
const fencingDelay = 8 * time.Second

func assignmentsOf(t *testing.T, n *harness.Node) float64 {
	t.Helper()
	v, _ := metricValue(t, n, "vsm_fsm_items", map[string]string{"kind": "assignments"})
	return v
}

// A leader paused (SIGSTOP) between deciding a scheduling round and writing
// it, then resumed after another node took over, must land none of that
// round: its writes are refused (counted and logged on it) instead of
// being forwarded to the new leader, which writes its own decision.
func TestPausedLeaderRoundDoesNotLand(t *testing.T) {
	t.Setenv("VSM_DEBUG_SCHEDULER_WRITE_DELAY", fencingDelay.String())
	pc := startPosterCluster(t, 1, 2, 400, 200*time.Millisecond, "fencing-e2e")
	nodes := pc.nodes
	old := findLeader(t, nodes)
	decided := func(n *harness.Node) bool {
		return strings.Contains(n.Log(), "round decided, holding its writes")
	}
	waitFor(t, 10*time.Second, func() bool { return decided(old) })
	if strings.Contains(old.Log(), "debug write delay over") {
		t.Fatal("the leader's first round was written before it could be paused; raise fencingDelay")
	}
	if err := syscall.Kill(old.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(old.Pid(), syscall.SIGCONT)
		}
	}
	defer resume()
	paused := time.Now()
	rest := others(nodes, old)
	var next *harness.Node
	waitFor(t, 20*time.Second, func() bool {
		for _, n := range rest {
			if st, err := nodeStatus(n); err == nil && st.State == "Leader" {
				next = n
				return true
			}
		}
		return false
	})
	t.Logf("%s paused mid-round; %s leads after %v", old.ID, next.ID, time.Since(paused).Round(time.Millisecond))
	if assignmentsOf(t, next) != 0 {
		t.Fatal("assignments were written before the new leader's own (delayed) round")
	}

	// Resume the old leader while the new one still holds its round: any
	// assignment that appears before the new leader writes is the old
	// leader's.
	resume()
	for !strings.Contains(next.Log(), "debug write delay over") {
		for _, n := range rest {
			if got := assignmentsOf(t, n); got != 0 && !strings.Contains(next.Log(), "debug write delay over") {
				t.Fatalf("%s holds %v assignments before the new leader wrote any: the deposed leader's round landed", n.ID, got)
			}
		}
		if time.Since(paused) > 40*time.Second {
			t.Fatal("the new leader never wrote its round")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(old.Log(), "debug write delay over") })
	var want float64
	waitFor(t, 20*time.Second, func() bool { want = assignmentsOf(t, next); return want > 0 })
	waitFor(t, 20*time.Second, func() bool {
		for _, n := range nodes {
			if assignmentsOf(t, n) != want {
				return false
			}
		}
		return true
	})
	if dropped, _ := metricValue(t, old, "vsm_leader_stale_writes_dropped_total", nil); dropped < 1 {
		t.Fatalf("the deposed leader counted %v dropped writes, want at least 1; log:\n%s", dropped, old.Log())
	}
	if !strings.Contains(old.Log(), "dropping a write decided while this node led") {
		t.Fatal("the deposed leader did not log its dropped write")
	}
}
