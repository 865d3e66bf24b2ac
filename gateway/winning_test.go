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

	// A V1 and a V1_1 sector of one size share the WinningPoSt type: one
	// proof covers both.
	store[fsm.SectorID{Miner: 1000, Number: 8}] = fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: 8}, Sealed: "store", Cache: "store", CommR: commR}
	v1 := prooftypes.ExtendedSectorInfo{SealProof: abi.RegisteredSealProof_StackedDrg2KiBV1, SectorNumber: 8, SealedCID: sealedCID(t, commR)}
	if proofs, err := w.ComputeProof(context.Background(), 1000, ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{good, v1}, Rand: rand}); err != nil || len(proofs) != 1 || proofs[0].PoStProof != abi.RegisteredPoStProof_StackedDrgWinning2KiBV1 || len(cp.task.Replicas) != 2 {
		t.Errorf("V1 and V1_1 sectors of 2KiB: %v, %+v", err, proofs)
	}
}

// TestWinningProverChainCommR: a location stored without a CommR is
// proven with the chain's (damocles proves with the SealedCID's); a stored
// CommR that differs is refused (TestWinningProverTask).
func TestWinningProverChainCommR(t *testing.T) {
	chain := [32]byte{7, 7, 7}
	store := fakeStore{{Miner: 1000, Number: 5}: {SectorID: fsm.SectorID{Miner: 1000, Number: 5}, Sealed: "store", Cache: "store"}}
	cp := &captureProver{}
	w := &WinningProver{Prover: cp, Locator: prover.Locator{Store: store}}
	s := prooftypes.ExtendedSectorInfo{SealProof: abi.RegisteredSealProof_StackedDrg2KiBV1_1, SectorNumber: 5, SealedCID: sealedCID(t, chain)}
	if _, err := w.ComputeProof(context.Background(), 1000, ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{s}, Rand: make([]byte, 32)}); err != nil {
		t.Fatalf("no stored CommR: %v, want a proof with the chain's", err)
	}
	if len(cp.task.Replicas) != 1 || cp.task.Replicas[0].CommR != prover.Bytes32(chain) {
		t.Errorf("replicas %+v, want CommR %x from the chain's SealedCID", cp.task.Replicas, chain)
	}
}

// TestWinningProverSectorKey: a sector snap-upgraded on chain (SectorKey
// set) is proven from its update files only if its location is marked
// upgraded; a mismatch either way is refused, since the wrong file would
// be read.
func TestWinningProverSectorKey(t *testing.T) {
	commR := [32]byte{1}
	loc := func(n uint64, upgraded bool) fsm.SectorLocation {
		return fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: n}, Sealed: "store", Cache: "store", Upgraded: upgraded, CommR: commR}
	}
	store := fakeStore{{Miner: 1000, Number: 1}: loc(1, false), {Miner: 1000, Number: 2}: loc(2, true)}
	cp := &captureProver{}
	w := &WinningProver{Prover: cp, Locator: prover.Locator{Store: store}}
	key := sealedCID(t, [32]byte{2})
	info := func(n uint64, withKey bool) prooftypes.ExtendedSectorInfo {
		s := prooftypes.ExtendedSectorInfo{SealProof: abi.RegisteredSealProof_StackedDrg2KiBV1_1, SectorNumber: abi.SectorNumber(n), SealedCID: sealedCID(t, commR)}
		if withKey {
			s.SectorKey = &key
		}
		return s
	}
	for _, tt := range []struct {
		name    string
		s       prooftypes.ExtendedSectorInfo
		wantErr string
	}{
		{"SectorKey, location not upgraded", info(1, true), "snap-upgraded on chain"},
		{"no SectorKey, location upgraded", info(2, false), "not upgraded on chain (no SectorKey) but its stored location is marked upgraded"},
		{"SectorKey, location upgraded", info(2, true), ""},
		{"no SectorKey, location not upgraded", info(1, false), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.ComputeProof(context.Background(), 1000, ComputeProofRequest{SectorInfos: []prooftypes.ExtendedSectorInfo{tt.s}, Rand: make([]byte, 32)})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if up := strings.Contains(cp.task.Replicas[0].SealedFile, "/update/"); up != (tt.s.SectorKey != nil) {
					t.Errorf("sealed file %s for SectorKey %v", cp.task.Replicas[0].SealedFile, tt.s.SectorKey)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
