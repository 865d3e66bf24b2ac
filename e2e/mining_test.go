package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/internal/harness"
)

// Mining test parameters: at 250 ms per epoch the judged window of 140
// rounds lasts 35 s; with 0.2 expected leaders per epoch about 26 rounds
// elect one of the three miners.
const (
	mnEpoch   = 250 * time.Millisecond
	mnLeaders = 0.2
	mnRounds  = 140
)

// TestMiningWinningPoSt is the mining module end to end with real
// processes: a devnet electing leaders, one vsm node with two ext-prover
// children started with --ext-prover --miner, three miners with real
// sectors. Every round elected after the node is up must end with a block
// whose WinningPoSt the devnet verified; none invalid, none missed.
func TestMiningWinningPoSt(t *testing.T) {
	start := time.Now()
	bin := harness.Binary(t)
	work := t.TempDir()
	spec := fmt.Sprintf(`Seed = "mining-e2e"
FirstDueEpoch = 1000000   # no WindowPoSt is judged: this node does not run --poster

[Mining]
ExpectedLeadersPerEpoch = %g
FirstEpoch = 1

[[Miners]]
ID = 1000
Sectors = 8
[[Miners]]
ID = 1001
Sectors = 8
[[Miners]]
ID = 1002
Sectors = 4
`, mnLeaders)
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, spec)
	apiInfo, dnCmd := startDevnetProcess(t, bin, filepath.Join(work, "dn"), specPath, mnEpoch)
	chain, err := fullnode.Dial(apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	n := harness.NewNode(t, "m1")
	writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), twoChildren)
	n.RunArgs = []string{"--bootstrap", "--ext-prover", "--miner", "--chain-api", apiInfo}
	n.Start()
	n.WaitHealthy(60 * time.Second)

	var miners []devnet.MinerSummary
	if err := chain.Call(ctx, "Devnet.Miners", &miners); err != nil {
		t.Fatal(err)
	}
	n.MustRun("storage", "add", "sectors", "--path", miners[0].SectorDir)
	var jsonl strings.Builder
	for _, m := range miners {
		n.MustRun("miner", "add", fmt.Sprintf("t0%d", m.ID), "--sector-size", "2KiB")
		for s := uint64(0); s < uint64(m.Sectors); s++ {
			si, err := chain.StateSectorGetInfo(ctx, fullnode.IDAddress(m.ID), abi.SectorNumber(s), nil)
			if err != nil || si == nil {
				t.Fatalf("sector %d of t0%d: %v", s, m.ID, err)
			}
			commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&jsonl, `{"miner":"t0%d","number":%d,"sealed":"sectors","cache":"sectors","proof":%d,"commr":"%x"}`+"\n", m.ID, s, si.SealProof, commR)
		}
	}
	locs := filepath.Join(work, "locs.jsonl")
	writeFile(t, locs, jsonl.String())
	n.MustRun("sector", "location", "import", "--file", locs, "--quiet")

	height := func() abi.ChainEpoch {
		h, err := chain.ChainHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h.Height
	}
	// Judge the rounds from a few epochs after the import on.
	from := height() + 4
	to := from + mnRounds
	t.Logf("node up and %d locations imported %v after start; judging rounds %d..%d", strings.Count(jsonl.String(), "\n"), time.Since(start).Round(time.Millisecond), from, to)
	for height() < to+2 {
		time.Sleep(mnEpoch)
	}
	var rep devnet.Report
	if err := chain.Call(ctx, "Devnet.Report", &rep, -1); err != nil {
		t.Fatal(err)
	}
	_ = dnCmd.Process.Signal(syscall.SIGTERM)
	_ = dnCmd.Wait()

	var proven, invalid, missed int
	perMiner := map[uint64]int{}
	for _, r := range rep.WinRecords {
		if r.Round < from || r.Round > to {
			continue
		}
		switch r.Outcome {
		case devnet.WinProven:
			proven++
			perMiner[r.Miner]++
		case devnet.WinInvalid:
			invalid++
			t.Errorf("round %d of t0%d: invalid WinningPoSt: %s", r.Round, r.Miner, r.Reason)
		default:
			missed++
			t.Errorf("round %d of t0%d (sector %d): missed", r.Round, r.Miner, r.Sector)
		}
	}
	accepted := miningMetric(t, n, `vsm_mining_rounds_total{outcome="accepted"}`)
	logs := n.Log()
	t.Logf("rounds %d..%d: proven %d (per miner %v), invalid %d, missed %d; node: %v blocks accepted, %d \"block accepted\" log lines; devnet over the whole run: %s; test took %v",
		from, to, proven, perMiner, invalid, missed, accepted, strings.Count(logs, "block accepted"), rep.WinningString(), time.Since(start).Round(time.Second))
	if proven < 5 {
		t.Errorf("only %d rounds proven in %d epochs; want several", proven, mnRounds)
	}
	if rep.Winning.Invalid != 0 {
		t.Errorf("devnet counted %d invalid WinningPoSts over the run", rep.Winning.Invalid)
	}
	if accepted < float64(proven) {
		t.Errorf("node counted %v accepted blocks, devnet %d proven", accepted, proven)
	}
	fmt.Printf("winning posts proven %d, invalid %d, missed %d\n", proven, invalid, missed)
}

// miningMetric reads one sample from the node's /metrics.
func miningMetric(t *testing.T, n *harness.Node, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}
