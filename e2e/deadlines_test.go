package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/daemon"
	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/internal/harness"
)

// Deadline test parameters. At 80 ms per epoch one deadline window (60
// epochs) lasts 4.8 s and the proving period (2880 epochs) 3.8 minutes.
const (
	dlEpoch    = 80 * time.Millisecond
	dlMiners   = 12
	dlSectors  = 384 // 2 KiB sectors per miner: four 2-sector partitions in each of the 48 deadlines, sent as 3+1 (the actor's limit is 3 a message)
	dlFirstDue = 250 // the devnet judges deadlines whose challenge epoch is at or after this
)

// startDevnetProcess runs `vsm devnet run` and returns its FULLNODE_API_INFO
// and the process.
func startDevnetProcess(t testing.TB, bin, dir, spec string, epoch time.Duration) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, "--log-level", "warn", "devnet", "run", "--dir", dir, "--spec", spec, "--listen", "127.0.0.1:0", "--epoch", epoch.String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir + ".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait(); logf.Close() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("devnet api info: %v", err)
	}
	info, ok := strings.CutPrefix(strings.TrimSpace(line), "FULLNODE_API_INFO=")
	if !ok {
		t.Fatalf("devnet first line %q", line)
	}
	return info, cmd
}

func nodeStatus(n *harness.Node) (cluster.Status, error) {
	var st cluster.Status
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := n.Client(n.Token()).Call(ctx, "VSM.Status", &st)
	return st, err
}

func findLeader(t testing.TB, nodes []*harness.Node) *harness.Node {
	t.Helper()
	deadline := time.Now().Add(setupBound(t, 30*time.Second))
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if st, err := nodeStatus(n); err == nil && st.State == "Leader" {
				return n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

func writeFileErr(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// waitFor polls cond until it holds or timeout passes (in a benchmark, at
// least benchSetupBound).
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	waitForWhy(t, timeout, func() (bool, string) { return cond(), "" })
}

// waitForWhy is waitFor whose condition also says what it saw, so that a
// failure shows why the condition did not hold.
func waitForWhy(t testing.TB, timeout time.Duration, cond func() (ok bool, saw string)) {
	t.Helper()
	timeout = setupBound(t, timeout)
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v; last seen: %s", timeout, saw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scheduleOf(n *harness.Node) (daemon.ScheduleView, error) {
	var v daemon.ScheduleView
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := n.Client(n.Token()).Call(ctx, "VSM.ClusterSchedule", &v, 0)
	if took := time.Since(start); took > time.Second {
		fmt.Printf("slow VSM.ClusterSchedule on %s: %v (%v)\n", n.ID, took, err)
	}
	return v, err
}

// owned lists the deadlines n owns in the replicated state (as n sees it).
func owned(v daemon.ScheduleView, id string) map[string]bool {
	out := map[string]bool{}
	for _, s := range v.Slots {
		if s.Owner == id {
			out[fmt.Sprintf("t0%d/%d", s.Miner, s.Deadline)] = true
		}
	}
	return out
}

// upcomingWindowOfFollower picks, among the nodes other than the leader,
// the one owning the earliest deadline with partitions that opens more
// than 5 epochs from now, as seen in the leader's schedule. Any follower
// will do: the scheduler spreads deadlines by GPU time, so a fixed one may
// own none of the next few windows (the first follower owned none of the
// next four in one CI run of TestFFIDeadlines).
func upcomingWindowOfFollower(t testing.TB, nodes []*harness.Node, leader *harness.Node, head func() int64) (*harness.Node, daemon.ScheduleSlot) {
	t.Helper()
	byID := map[string]*harness.Node{}
	for _, n := range nodes {
		if n != leader {
			byID[n.ID] = n
		}
	}
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		v, err := scheduleOf(leader)
		if err != nil {
			t.Logf("schedule: %v", err)
			time.Sleep(time.Second)
			continue
		}
		now := head()
		var best *daemon.ScheduleSlot
		for i, s := range v.Slots {
			if byID[s.Owner] != nil && s.Open > now+5 && s.Partitions > 0 && (best == nil || s.Open < best.Open) {
				best = &v.Slots[i]
			}
		}
		if best != nil {
			return byID[best.Owner], *best
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no node but the leader %s owns an upcoming deadline with partitions", leader.ID)
	return nil, daemon.ScheduleSlot{}
}

// waitReassigned polls survivor's view until no deadline is owned by
// gone and returns how long that took since killedAt.
func waitReassigned(t testing.TB, survivor *harness.Node, gone string, killedAt time.Time) time.Duration {
	t.Helper()
	for time.Since(killedAt) < 60*time.Second {
		if v, err := scheduleOf(survivor); err == nil && len(v.Slots) > 0 && len(owned(v, gone)) == 0 {
			return time.Since(killedAt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("deadlines of %s not reassigned within 60 s", gone)
	return 0
}

// TestDeadlinesSurviveNodeLoss is issue 5's test: a devnet at 80 ms per
// epoch, 3 vsm nodes with 2 ext-prover children each (--ext-prover
// --poster), 12 miners of 96 real 2 KiB sectors, one full proving period.
// A non-leader is killed -9 in the middle of an open deadline it owns and
// restarted; later the leader is killed -9. Every deadline of the period
// must be proven and verified by the devnet; none missed.
func TestDeadlinesSurviveNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a full proving period (about 5 minutes): make e2e")
	}
	start := time.Now()
	pc := startPosterCluster(t, dlMiners, dlSectors, dlFirstDue, dlEpoch, "deadlines-e2e")
	chain, nodes, dnCmd := pc.chain, pc.nodes, pc.devnet
	ctx := context.Background()
	head, err := chain.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up and %d locations imported at epoch %d (first judged challenge epoch %d), %v after start", dlMiners*dlSectors, head.Height, dlFirstDue, time.Since(start).Round(time.Millisecond))
	if head.Height >= dlFirstDue-30 {
		t.Fatalf("set-up took too long: epoch %d, the first judged deadline's challenge is at %d", head.Height, dlFirstDue)
	}

	// Wait until every deadline has an owner.
	leader := findLeader(t, nodes)
	for {
		v, err := scheduleOf(leader)
		if err == nil && len(v.Slots) >= dlMiners*48 && len(owned(v, "")) == 0 {
			loads := []string{}
			for _, n := range v.Nodes {
				loads = append(loads, fmt.Sprintf("%s:%d", n.ID, n.Deadlines))
			}
			t.Logf("all %d deadlines assigned: %s", dlMiners*48, strings.Join(loads, " "))
			break
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("deadlines not all assigned: %v %+v", err, v.Nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}

	heightNow := func() abi.ChainEpoch {
		h, err := chain.ChainHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h.Height
	}
	waitEpoch := func(e abi.ChainEpoch) {
		for heightNow() < e {
			time.Sleep(dlEpoch / 2)
		}
	}

	// Kill -9 a non-leader in the middle of an open deadline it owns,
	// about a third into the period.
	waitEpoch(dlFirstDue + 900)
	victim, target := upcomingWindowOfFollower(t, nodes, leader, func() int64 { return int64(heightNow()) })
	waitEpoch(abi.ChainEpoch(target.Open + 20))
	killedAt := time.Now()
	victim.Kill()
	t.Logf("killed -9 %s (not the leader) at epoch %d, in the open window %d..%d of t0%d/%d it owns", victim.ID, heightNow(), target.Open, target.Close, target.Miner, target.Deadline)
	lat1 := waitReassigned(t, leader, victim.ID, killedAt)
	t.Logf("reassignment latency after kill -9 of %s: %v", victim.ID, lat1.Round(time.Millisecond))

	time.Sleep(10 * time.Second)
	victim.Start()
	victim.WaitHealthy(60 * time.Second)
	t.Logf("restarted %s at epoch %d", victim.ID, heightNow())

	// Then kill -9 the leader, two thirds into the period; quorum remains.
	waitEpoch(dlFirstDue + 1900)
	var survivor *harness.Node
	for _, n := range nodes {
		if n != leader {
			survivor = n
		}
	}
	if v, err := scheduleOf(leader); err != nil || len(owned(v, leader.ID)) == 0 {
		t.Fatalf("the leader %s owns no deadlines to lose (%v)", leader.ID, err)
	}
	killedAt = time.Now()
	leader.Kill()
	t.Logf("killed -9 the leader %s at epoch %d", leader.ID, heightNow())
	lat2 := waitReassigned(t, survivor, leader.ID, killedAt)
	newLeader := findLeader(t, nodes)
	t.Logf("reassignment latency after kill -9 of the leader %s: %v (new leader %s)", leader.ID, lat2.Round(time.Millisecond), newLeader.ID)

	// One full period of judged windows: those opening in
	// [first+20, first+20+2880) close by first+2960.
	from, to := abi.ChainEpoch(dlFirstDue+20), abi.ChainEpoch(dlFirstDue+20+2880)
	waitEpoch(to + 60 + 2)
	var rep devnet.Report
	if err := chain.Call(ctx, "Devnet.Report", &rep, -1); err != nil {
		t.Fatal(err)
	}
	var proven, faulty, missed, split int
	for _, r := range rep.Records {
		if r.Open < from || r.Open >= to {
			continue
		}
		if r.Messages >= 2 {
			split++
		}
		switch r.Outcome {
		case "proven":
			proven++
		case "faulty":
			faulty++
			t.Errorf("deadline t0%d/%d (open %d) faulty: %+v", r.Miner, r.Index, r.Open, r)
		default:
			missed++
			t.Errorf("deadline t0%d/%d (open %d) %s", r.Miner, r.Index, r.Open, r.Outcome)
		}
	}
	_ = dnCmd.Process.Signal(syscall.SIGTERM)
	_ = dnCmd.Wait()

	logs := ""
	for _, n := range nodes {
		logs += n.Log()
	}
	moves := strings.Count(logs, "scheduler: deadline reassigned")
	deadMoves := strings.Count(logs, `"reason": "owner-dead"`) + strings.Count(logs, "\towner-dead")
	t.Logf("log: %d reassignment lines (%d owner-dead), %d proofs submitted, %d give-ups", moves, deadMoves, strings.Count(logs, "window post submitted"), strings.Count(logs, "giving up"))
	faultLines := 0
	for l := range strings.SplitSeq(logs, "\n") {
		// The runner declares no fault ahead: a sector it cannot read is
		// skipped when proving, or found still unreadable by a recovery check.
		if (strings.Contains(l, "sector skipped as faulty") || strings.Contains(l, "sector check")) && faultLines < 20 {
			t.Logf("fault: %s", l)
			faultLines++
		}
	}
	shown := 0
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, "giving up") && shown < 5 {
			t.Logf("give-up: %s", l)
			shown++
		}
	}
	if deadMoves == 0 && !strings.Contains(logs, "owner-dead") {
		t.Errorf("the logs show no owner-dead reassignment")
	}
	t.Logf("devnet totals over the whole run: %s; test took %v", rep, time.Since(start).Round(time.Second))
	if proven != dlMiners*48 || faulty != 0 || missed != 0 || rep.Totals.Missed != 0 || rep.Totals.Faulty != 0 {
		t.Errorf("one proving period: proven %d, faulty %d, missed %d; want %d proven and none missed (devnet totals %s)", proven, faulty, missed, dlMiners*48, rep)
	}
	if split == 0 {
		t.Errorf("no deadline took two messages: its 4 partitions should be sent as 3+1")
	}
	if rep.Totals.MessagesFailed != 0 {
		t.Errorf("%d messages landed with a non-zero exit code (the actor refused them at execution)", rep.Totals.MessagesFailed)
	}
	t.Logf("deadlines sent in two messages: %d; pushes refused at estimation: %d", split, rep.Totals.MessagesRefused)
	// make e2e prints this line last.
	fmt.Printf("deadlines proven %d, faulty %d, missed %d\n", proven, faulty, missed)
	fmt.Printf("reassignment latency: non-leader %v, leader %v\n", lat1.Round(time.Millisecond), lat2.Round(time.Millisecond))
}
