package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// TestFFIEngineJudgesRealProofs drives the devnet's filecoin-ffi engine as
// the devnet does: it seals real sectors, a separate vsm-ffi-prover child
// proves them, and the engine accepts the proofs and rejects them tampered,
// for WindowPoSt and WinningPoSt. make e2e-ffi runs it.
func TestFFIEngineJudgesRealProofs(t *testing.T) {
	bin := os.Getenv("VSM_FFI_PROVER")
	if bin == "" {
		t.Skip("needs the real engine: make e2e-ffi")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t)
	eng, err := devnet.NewFFIEngine(ctx, bin, 1, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Close(ctx) }()
	const miner = 1000
	dir := t.TempDir()
	var reps []prover.Replica
	var commits []devnet.SectorCommitment
	for n := uint64(1); n <= 3; n++ {
		commR, err := eng.SealSector(ctx, miner, n, sectorfile.Size2KiB, dir)
		if err != nil {
			t.Fatal(err)
		}
		p := sectorfile.LayoutPaths(dir, miner, n, false)
		reps = append(reps, prover.Replica{SectorID: n, CommR: prover.Bytes32(commR), CacheDir: p.Cache, SealedFile: p.Sealed})
		commits = append(commits, devnet.SectorCommitment{Number: n, CommR: commR})
	}
	if _, err := eng.SealSector(ctx, miner, 1, sectorfile.Size2KiB, dir); err == nil {
		t.Error("sealing over an existing sector was not refused")
	}
	if n, err := eng.MaxWindowPoStProofSize(abi.RegisteredPoStProof_StackedDrgWindow2KiBV1_1); err != nil || n != 192 {
		t.Errorf("MaxWindowPoStProofSize = %d, %v; want 192", n, err)
	}

	sup, err := prover.NewSupervisor(prover.Config{WdPost: []prover.ProcessorConfig{{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 60}}},
		prover.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sup.Close(ctx) }()

	var seed [32]byte
	copy(seed[:], "devnet ffi engine window seed..")
	seed[31] &= 0x3f
	windowType, _ := fullnode.WindowPoStProofForSize(abi.SectorSize(sectorfile.Size2KiB))
	pp, _ := sectorfile.PoStProofFromChain(int64(windowType))
	out, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: pp.Name, Replicas: reps, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	info := devnet.WindowPoStVerifyInfo{Miner: miner, ProofType: windowType, Randomness: seed, Sectors: commits, Proof: out.Proofs[0]}
	if err := eng.VerifyWindowPoSt(ctx, info); err != nil {
		t.Fatalf("a real proof was rejected: %v", err)
	}
	tampered := info
	tampered.Proof = append([]byte(nil), info.Proof...)
	tampered.Proof[7] ^= 0x80
	if err := eng.VerifyWindowPoSt(ctx, tampered); err == nil || !strings.Contains(err.Error(), "filecoin-ffi") {
		t.Fatalf("a tampered proof: %v, want a filecoin-ffi rejection", err)
	}

	// WinningPoSt: the engine picks the challenged sector, the child
	// proves it, the engine verifies it.
	winType, _ := fullnode.WinningPoStProofForSize(abi.SectorSize(sectorfile.Size2KiB))
	copy(seed[:], "devnet ffi engine winning seed.")
	seed[31] &= 0x3f
	idx, err := eng.GenerateWinningPoStSectorChallenge(ctx, winType, miner, seed, uint64(len(reps)))
	if err != nil || len(idx) != 1 {
		t.Fatalf("winning challenge: %v %v", idx, err)
	}
	wp, _ := sectorfile.WinningPoStProofFromChain(int64(winType))
	wout, err := sup.ProveWinning(ctx, prover.WinningPoStTask{MinerID: miner, ProofType: wp.Name, Replicas: []prover.Replica{reps[idx[0]]}, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	winfo := devnet.WinningPoStVerifyInfo{Miner: miner, ProofType: winType, Randomness: seed, Sectors: commits[idx[0] : idx[0]+1], Proof: wout.Proofs[0]}
	if err := eng.VerifyWinningPoSt(ctx, winfo); err != nil {
		t.Fatalf("a real winning proof was rejected: %v", err)
	}
	winfo.Sectors = commits[(idx[0]+1)%3 : (idx[0]+1)%3+1]
	if err := eng.VerifyWinningPoSt(ctx, winfo); err == nil {
		t.Fatal("a winning proof verified for a sector it does not cover")
	}
}
