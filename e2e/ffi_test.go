package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/internal/harness"
)

// Real-SNARK deadline test parameters. At 250 ms per epoch a window (60
// epochs) is open 15 s and the proving period lasts 12 minutes. A CPU
// SNARK over one deadline's 8 sectors takes about 6 s on 2 shared cores
// (3 nodes and the devnet's verifiers share them), so a node that takes
// over a window 1.25 s in, plus 2-3 s to notice the death and reassign,
// still has about twice the proving time left; on mainnet a 30-minute
// window holds three 4-minute GPU partitions about as comfortably. At 200
// ms the takeover missed its window on a loaded machine.
const (
	ffiEpoch    = 250 * time.Millisecond
	ffiMiners   = 4
	ffiSectors  = 32  // 2 KiB sectors per miner: 4 deadlines x 4 partitions of 2
	ffiFirstDue = 300 // the devnet judges deadlines whose challenge epoch is at or after this
	ffiStagger  = 7   // miner i's periods start 7*i epochs after miner 0's
)

// ffiDeadlines are miner i's deadlines with sectors: 4+i, 16+i, 28+i, 40+i.
func ffiDeadlines(i int) []int { return []int{4 + i, 16 + i, 28 + i, 40 + i} }

// TestFFIDeadlines is issue 9's end-to-end test: a devnet whose sectors
// are sealed by filecoin-ffi and whose every proof is verified by
// filecoin-ffi (Engine = "ffi"), 3 vsm nodes with 2 vsm-ffi-prover children
// each, 4 miners whose deadlines hold 4 partitions each (so one deadline
// takes two messages: the actor's limit is 3 partitions), one full proving
// period. A non-leader is killed -9 in a window it owns; later one sealed
// file is overwritten, and that sector must end up faulty and skipped while
// its partition is still proven. Every other deadline is proven, none
// missed.
func TestFFIDeadlines(t *testing.T) {
	ffiBin := os.Getenv("VSM_FFI_PROVER")
	if ffiBin == "" {
		t.Skip("needs the real engine: make e2e-ffi")
	}
	params := os.Getenv("FIL_PROOFS_PARAMETER_CACHE")
	if params == "" {
		t.Fatal("FIL_PROOFS_PARAMETER_CACHE is not set (make e2e-ffi sets it)")
	}
	start := time.Now()
	bin := harness.Binary(t)
	work := t.TempDir()

	var spec strings.Builder
	fmt.Fprintf(&spec, "Seed = \"ffi-e2e\"\nEngine = \"ffi\"\nFirstDueEpoch = %d\n", ffiFirstDue)
	for i := range ffiMiners {
		offset := ffiFirstDue + 20 + ffiStagger*i
		dls := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ffiDeadlines(i))), ", "), "[]")
		fmt.Fprintf(&spec, "[[Miners]]\nID = %d\nSectorSize = \"2KiB\"\nSectors = %d\nProvingPeriodOffset = %d\nDeadlines = [%s]\n",
			1000+i, ffiSectors, offset, dls)
	}
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, spec.String())
	pc := &posterCluster{}
	pc.apiInfo, pc.devnet = startDevnetProcess(t, bin, filepath.Join(work, "dn"), specPath, ffiEpoch)
	chain, err := fullnode.Dial(pc.apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc.chain = chain
	// Two children per node, as for two GPUs.
	child := fmt.Sprintf(`[[WdPost]]
Bin = %q
Args = ["wdpost", "--parallel-reads", "4"]
Concurrent = 1
ReadyTimeoutSecs = 60
[WdPost.Envs]
FIL_PROOFS_PARAMETER_CACHE = %q

`, ffiBin, params)
	children := strings.Repeat(child, 2)
	pc.nodes = startClusterWith(t, 3, func(i int, extraInit ...string) *harness.Node {
		n := harness.NewNode(t, fmt.Sprintf("n%d", i+1), extraInit...)
		writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), children)
		return n
	}, "--ext-prover", "--poster", "--chain-api", pc.apiInfo)
	pc.importSectors(t)
	nodes := pc.nodes
	ctx := context.Background()

	heightNow := func() abi.ChainEpoch {
		h, err := chain.ChainHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h.Height
	}
	waitEpoch := func(e abi.ChainEpoch) {
		for heightNow() < e {
			time.Sleep(ffiEpoch / 2)
		}
	}
	h := heightNow()
	t.Logf("devnet sealed %d real sectors; cluster up and locations imported at epoch %d, %v after start", ffiMiners*ffiSectors, h, time.Since(start).Round(time.Millisecond))
	if h >= ffiFirstDue-20 {
		t.Fatalf("set-up took too long: epoch %d, the first judged challenge is at %d", h, ffiFirstDue)
	}

	// Kill -9 a non-leader in a window it owns, a third into the period.
	leader := findLeader(t, nodes)
	waitEpoch(ffiFirstDue + 900)
	victim, target := upcomingWindowOfFollower(t, nodes, leader, func() int64 { return int64(heightNow()) })
	waitEpoch(abi.ChainEpoch(target.Open + 5))
	killedAt := time.Now()
	victim.Kill()
	t.Logf("killed -9 %s at epoch %d, in the open window %d..%d of t0%d/%d it owns", victim.ID, heightNow(), target.Open, target.Close, target.Miner, target.Deadline)
	lat := waitReassigned(t, leader, victim.ID, killedAt)
	t.Logf("reassignment latency: %v", lat.Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	victim.Start()
	victim.WaitHealthy(60 * time.Second)

	// Overwrite one sealed file of the last miner's last deadline after
	// that deadline's fault cutoff and before its challenge: too late to
	// declare, so the prover must find the fault while proving, skip the
	// sector in the message and still prove its partition. The deadline's
	// partitions are laid out round robin over the miner's deadlines, so
	// its partition 3 (sectors 6 and 7) is in its fourth deadline.
	const badMiner, badSector = 1000 + ffiMiners - 1, 6
	badDeadline := uint64(ffiDeadlines(ffiMiners - 1)[3])
	badOpen := abi.ChainEpoch(ffiFirstDue + 20 + ffiStagger*(ffiMiners-1) + 60*int(badDeadline))
	var miners []devnet.MinerSummary
	if err := chain.Call(ctx, "Devnet.Miners", &miners); err != nil {
		t.Fatal(err)
	}
	waitEpoch(badOpen - 50) // cutoff at open-70, challenge at open-20
	sealed := filepath.Join(miners[0].SectorDir, "sealed", fmt.Sprintf("s-t0%d-%d", badMiner, badSector))
	garbage := make([]byte, 2<<10)
	for i := range garbage {
		garbage[i] = byte(i*31 + 7)
	}
	if err := os.WriteFile(sealed, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("overwrote %s at epoch %d (t0%d deadline %d)", sealed, heightNow(), badMiner, badDeadline)

	// One full period of judged windows: those opening in
	// [first+20, first+20+2880) close by first+2960.
	from, to := abi.ChainEpoch(ffiFirstDue+20), abi.ChainEpoch(ffiFirstDue+20+2880)
	waitEpoch(to + 60 + 2)
	var rep devnet.Report
	if err := chain.Call(ctx, "Devnet.Report", &rep, -1); err != nil {
		t.Fatal(err)
	}
	var proven, faulty, missed, multiMessage int
	for _, r := range rep.Records {
		if r.Open < from || r.Open >= to {
			continue
		}
		if r.Messages >= 2 {
			multiMessage++
		}
		switch {
		case r.Outcome == "proven":
			proven++
		case r.Outcome == "faulty" && r.Miner == badMiner && r.Index == badDeadline:
			faulty++
			if r.FaultySectors != 1 || r.ProvenPartitions != r.Partitions {
				t.Errorf("corrupted deadline t0%d/%d: %d faulty sectors, %d of %d partitions proven; want 1 faulty and all proven",
					r.Miner, r.Index, r.FaultySectors, r.ProvenPartitions, r.Partitions)
			}
		case r.Outcome == "faulty":
			faulty++
			t.Errorf("deadline t0%d/%d (open %d) faulty: %+v", r.Miner, r.Index, r.Open, r)
		default:
			missed++
			t.Errorf("deadline t0%d/%d (open %d) %s: %+v", r.Miner, r.Index, r.Open, r.Outcome, r)
		}
	}
	_ = pc.devnet.Process.Signal(syscall.SIGTERM)
	_ = pc.devnet.Wait()
	logs := ""
	for _, n := range nodes {
		logs += n.Log()
	}
	if t.Failed() {
		showDeadlineLogs(t, logs, rep, from, to)
	}
	if dir := os.Getenv("VSM_ARTIFACTS"); dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, "ffi-e2e-nodes.log"), []byte(logs), 0o644)
	}
	t.Logf("log: %d proofs submitted; devnet totals %s; test took %v", strings.Count(logs, "window post submitted"), rep, time.Since(start).Round(time.Second))
	want := ffiMiners*len(ffiDeadlines(0)) - 1
	if proven != want || faulty != 1 || missed != 0 {
		t.Errorf("one proving period: proven %d, faulty %d, missed %d; want %d proven, the corrupted one faulty, none missed", proven, faulty, missed, want)
	}
	// The corrupted sector went through the skip path: found while
	// proving, not declared ahead.
	badName := fmt.Sprintf("s-t0%d-%d", badMiner, badSector)
	skippedWhileProving := false
	for l := range strings.SplitSeq(logs, "\n") {
		if (strings.Contains(l, "prover found faulty sectors") && strings.Contains(l, fmt.Sprintf(`"miner": %d`, badMiner))) ||
			(strings.Contains(l, "sector skipped as faulty") && strings.Contains(l, badName)) {
			skippedWhileProving = true
		}
	}
	if !skippedWhileProving {
		t.Errorf("no node logged %s as skipped while proving", badName)
	}
	if multiMessage == 0 {
		t.Errorf("no deadline took two messages: batches of 4 partitions should split at the actor's limit of 3")
	}
	// make e2e-ffi prints this line last.
	fmt.Printf("deadlines proven %d, faulty %d, missed %d (real SNARKs, verified by filecoin-ffi)\n", proven, faulty, missed)
}

// showDeadlineLogs prints the node log lines about each deadline that was
// not proven, so a failure says what the runner did.
func showDeadlineLogs(t *testing.T, logs string, rep devnet.Report, from, to abi.ChainEpoch) {
	t.Helper()
	for _, r := range rep.Records {
		if r.Open < from || r.Open >= to || r.Outcome == "proven" {
			continue
		}
		// The runner names a deadline "t0M/D", the scheduler "f0M/D".
		names := []string{fmt.Sprintf("t0%d/%d\"", r.Miner, r.Index), fmt.Sprintf("f0%d/%d\"", r.Miner, r.Index)}
		shown := 0
		for l := range strings.SplitSeq(logs, "\n") {
			if (strings.Contains(l, names[0]) || strings.Contains(l, names[1])) && shown < 40 {
				t.Logf("t0%d/%d: %s", r.Miner, r.Index, l)
				shown++
			}
		}
	}
}
