package prover_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
)

// TestWinningPoStRealChild sends WinningPoSt and WindowPoSt tasks to one
// real `vsm wdpost` child: the same child serves both, told apart by
// proof_type, and the WinningPoSt proof verifies for the challenged sector
// only.
func TestWinningPoStRealChild(t *testing.T) {
	const miner = 1000
	bin := buildVSM(t)
	reps := createSectors(t, t.TempDir(), miner, 3)
	block := prover.ProcessorConfig{Bin: bin, Args: []string{"wdpost"}, Concurrent: 2, Weight: 1, ReadyTimeoutSecs: 10}
	sup := startSupervisor(t, prover.Config{WdPost: []prover.ProcessorConfig{block}}, prover.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	seed := prover.Bytes32{1, 2, 3}
	out, err := sup.ProveWinning(ctx, prover.WinningPoStTask{MinerID: miner, ProofType: "StackedDrgWinning2KiBV1", Replicas: reps[1:2], Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if out.ChallengedReads != engine.WinningChallengesPerSector {
		t.Errorf("challenged reads %d, want %d", out.ChallengedReads, engine.WinningChallengesPerSector)
	}
	good := []engine.SectorCommitment{{ID: reps[1].SectorID, CommR: reps[1].CommR}}
	if err := engine.Verify(miner, "StackedDrgWinning2KiBV1", seed, good, out.Proofs[0]); err != nil {
		t.Fatalf("verify: %v", err)
	}
	other := []engine.SectorCommitment{{ID: reps[0].SectorID, CommR: reps[0].CommR}}
	if err := engine.Verify(miner, "StackedDrgWinning2KiBV1", seed, other, out.Proofs[0]); err == nil {
		t.Fatal("proof verified for a sector it does not cover")
	}

	// The same child still proves WindowPoSt.
	win, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: "StackedDrgWindow2KiBV1_2", Replicas: reps, Seed: seed})
	if err != nil || len(win.Proofs) != 1 || len(win.Faults) != 0 {
		t.Fatalf("window post: %+v, %v", win, err)
	}

	// Errors, said plainly: two replicas, an unreadable sector.
	_, err = sup.ProveWinning(ctx, prover.WinningPoStTask{MinerID: miner, ProofType: "StackedDrgWinning2KiBV1", Replicas: reps[:2], Seed: seed})
	if err == nil || !strings.Contains(err.Error(), "want exactly the 1 challenged sector") {
		t.Errorf("two replicas: %v", err)
	}
	if err := os.Remove(reps[2].SealedFile); err != nil {
		t.Fatal(err)
	}
	_, err = sup.ProveWinning(ctx, prover.WinningPoStTask{MinerID: miner, ProofType: "StackedDrgWinning2KiBV1", Replicas: reps[2:3], Seed: seed})
	if err == nil || !strings.Contains(err.Error(), "challenged sector 3 cannot be proven") {
		t.Errorf("unreadable sector: %v", err)
	}
}

// TestWinPostChildren: with a [[WinPost]] block, WinningPoSt goes to that
// child and WindowPoSt to the [[WdPost]] one; the WinPost child must print
// the winning_post ready line, and only WdPost children count as capacity.
func TestWinPostChildren(t *testing.T) {
	const miner = 1000
	bin := buildVSM(t)
	reps := createSectors(t, t.TempDir(), miner, 2)
	cfg, err := prover.ParseConfig([]byte(`[[WdPost]]
Bin = "` + bin + `"
[[WinPost]]
Bin = "` + bin + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	sup := startSupervisor(t, cfg, prover.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got := sup.WinningChildren(); got != prover.KindWinPost {
		t.Errorf("WinningChildren = %q, want WinPost", got)
	}
	seed := prover.Bytes32{7}
	if _, err := sup.ProveWinning(ctx, prover.WinningPoStTask{MinerID: miner, ProofType: "StackedDrgWinning2KiBV1", Replicas: reps[:1], Seed: seed}); err != nil {
		t.Fatal(err)
	}
	if _, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: "StackedDrgWindow2KiBV1_2", Replicas: reps, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	capa := sup.Capacity()
	proven := map[string]uint64{}
	for _, c := range capa.Children {
		proven[c.Name] = c.Proven
	}
	if proven["wdpost-0"] != 1 || proven["winpost-0"] != 1 {
		t.Errorf("proven per child %v, want one each (winning on winpost-0, window on wdpost-0)", proven)
	}
	if capa.TotalSlots != 1 {
		t.Errorf("total slots %d, want 1 (the WinPost child is not WindowPoSt capacity)", capa.TotalSlots)
	}

	// A [[WinPost]] block running a WindowPoSt child is refused at start.
	bad := startSupervisor(t, prover.Config{
		WdPost:  []prover.ProcessorConfig{{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 10}},
		WinPost: []prover.ProcessorConfig{{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 10}},
	}, prover.Options{BackoffMin: time.Hour})
	found := false
	for _, c := range bad.Capacity().Children {
		if c.Name != "winpost-0" {
			continue
		}
		found = true
		if c.State == prover.StateReady || !strings.Contains(c.LastError, `want the ready line "winning_post processor ready"`) {
			t.Errorf("winpost child with the wrong ready line: state %s, last error %q", c.State, c.LastError)
		}
	}
	if !found {
		t.Error("no winpost-0 child in Capacity")
	}
}

// startSupervisor starts the children of cfg and closes them when the test
// ends.
func startSupervisor(t *testing.T, cfg prover.Config, opts prover.Options) *prover.Supervisor {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	sup, err := prover.NewSupervisor(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sup.Close(ctx); err != nil {
			t.Errorf("closing the children: %v", err)
		}
	})
	return sup
}
