package gateway

import (
	"context"
	"strings"
	"testing"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"github.com/ipfs/go-cid"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/prover"
)

type fakeStore map[fsm.SectorID]fsm.SectorLocation

func (s fakeStore) Location(id fsm.SectorID) (fsm.SectorLocation, bool) {
	l, ok := s[id]
	return l, ok
}

func (s fakeStore) Storage(name string) (fsm.StorageInstance, bool) {
	return fsm.StorageInstance{Name: name, Path: "/mnt/" + name}, name == "store"
}

type captureProver struct{ task prover.WinningPoStTask }

func (c *captureProver) ProveWinning(_ context.Context, task prover.WinningPoStTask) (prover.WinningPoStOutput, error) {
	c.task = task
	return prover.WinningPoStOutput{Proofs: [][]byte{{0xaa}}}, nil
}

func sealedCID(t *testing.T, commR [32]byte) cid.Cid {
	t.Helper()
	c, err := commcid.ReplicaCommitmentV1ToCID(commR[:])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWinningProverTask: the proof type follows the seal proof, the
// randomness is masked, the replica comes from the store; what cannot be
// proven is an error that says why.
func TestWinningProverTask(t *testing.T) {
	commR := [32]byte{1, 2, 3}
	store := fakeStore{{Miner: 1000, Number: 5}: {SectorID: fsm.SectorID{Miner: 1000, Number: 5}, Sealed: "store", Cache: "store", SealProof: 5, CommR: commR}}
	good := prooftypes.ExtendedSectorInfo{SealProof: abi.RegisteredSealProof_StackedDrg2KiBV1_1, SectorNumber: 5, SealedCID: sealedCID(t, commR)}
	rand := make([]byte, 32)
	for i := range rand {
		rand[i] = 0xff
	}
	cp := &captureProver{}
	w := &WinningProver{Prover: cp, Locator: prover.Locator{Store: store}}
	proofs, err := w.ComputeProof(context.Background(), 1000, ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{good}, Rand: rand, Height: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(proofs) != 1 || proofs[0].PoStProof != abi.RegisteredPoStProof_StackedDrgWinning2KiBV1 || proofs[0].ProofBytes[0] != 0xaa {
		t.Errorf("proofs %+v, want one StackedDrgWinning2KiBV1 proof", proofs)
	}
	task := cp.task
	if task.Seed[31] != 0x3f || task.Seed[0] != 0xff {
		t.Errorf("seed %x: want rand with byte 31 masked to 0x3f and the rest untouched", task.Seed)
	}
	if rand[31] != 0xff {
		t.Error("the request's randomness was modified in place")
	}
	if task.ProofType != "StackedDrgWinning2KiBV1" || task.MinerID != 1000 || len(task.Replicas) != 1 ||
		task.Replicas[0].SealedFile != "/mnt/store/sealed/s-t01000-5" || task.Replicas[0].CommR != prover.Bytes32(commR) {
		t.Errorf("task %+v", task)
	}

	other := good
	other.SealedCID = sealedCID(t, [32]byte{9})
	missing := good
	missing.SectorNumber = 6
	mixed := good
	mixed.SealProof = abi.RegisteredSealProof_StackedDrg8MiBV1_1
	for _, tt := range []struct {
		name    string
		req     ComputeProofRequest
		wantErr string
	}{
		{"no sectors", ComputeProofRequest{Rand: rand}, "names no sectors"},
		{"short randomness", ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{good}, Rand: rand[:31]}, "randomness has 31 bytes, want 32"},
		{"commR differs", ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{other}, Rand: rand}, "differs from the chain's sealed CID"},
		{"no location", ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{missing}, Rand: rand}, "challenged sector 6 of t01000: no location in the store"},
		{"mixed seal proofs", ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{good, mixed}, Rand: rand}, "one WinningPoSt covers one proof type"},
		{"bad seal proof", ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{{SealProof: 999}}, Rand: rand}, "has no WinningPoSt type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := w.ComputeProof(context.Background(), 1000, tt.req); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}

	notReady := &WinningProver{Prover: cp, Locator: prover.Locator{Store: store}, Ready: func() error { return context.DeadlineExceeded }}
	if _, err := notReady.ComputeProof(context.Background(), 1000, ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{good}, Rand: rand}); err == nil || !strings.Contains(err.Error(), "not caught up") {
		t.Errorf("replica not ready: %v", err)
	}
}
