package engine

import (
	"context"
	"strings"
	"testing"
)

const winningType = "StackedDrgWinning2KiBV1"

func TestWinningSectorChallengeDeterministicAndSpread(t *testing.T) {
	var r [32]byte
	r[0], r[31] = 7, 0xff // the top bits must be cleared by the function
	a, err := WinningSectorChallenges(1000, r, 50)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := WinningSectorChallenges(1000, NormalizeRandomness(r), 50)
	if len(a) != 1 || a[0] != b[0] || a[0] >= 50 {
		t.Fatalf("challenges %v vs %v", a, b)
	}
	// Over many randomness values every index of a small set is picked,
	// and the miner id changes the pick.
	seen := map[uint64]int{}
	differ := 0
	for i := range 400 {
		var rr [32]byte
		rr[0], rr[1] = byte(i), byte(i>>8)
		x, _ := WinningSectorChallenges(1000, rr, 5)
		y, _ := WinningSectorChallenges(1001, rr, 5)
		seen[x[0]]++
		if x[0] != y[0] {
			differ++
		}
	}
	if len(seen) != 5 {
		t.Errorf("picked indexes %v, want all of 0..4", seen)
	}
	if differ < 200 {
		t.Errorf("miner id changed the pick only %d of 400 times", differ)
	}
	if _, err := WinningSectorChallenges(1000, r, 0); err == nil {
		t.Error("empty sector set accepted")
	}
}

func TestProverIDIsLEB128(t *testing.T) {
	id := ProverID(1000) // 1000 = 0xe8 0x07 in LEB128
	if id[0] != 0xe8 || id[1] != 0x07 || id[2] != 0 {
		t.Fatalf("prover id % x", id[:4])
	}
}

func TestWinningProveVerify(t *testing.T) {
	ctx := context.Background()
	sectors := makeSectors(t, t.TempDir(), 1000, 3)
	var rnd [32]byte
	rnd[9] = 3
	res, err := Prover{}.Prove(ctx, 1000, winningType, rnd, sectors[1:2])
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Faults) != 0 || res.Reads != WinningChallengesPerSector {
		t.Fatalf("faults %v reads %d, want 0 and %d", res.Faults, res.Reads, WinningChallengesPerSector)
	}
	good := commitments(sectors[1:2])
	if err := Verify(1000, winningType, rnd, good, res.Proof); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(1000, "0", rnd, good, res.Proof); err != nil {
		t.Fatalf("Verify with chain id 0: %v", err)
	}
	other := rnd
	other[0] ^= 1
	for name, tc := range map[string]struct {
		typ     string
		rnd     [32]byte
		sectors []SectorCommitment
		miner   uint64
		want    string
	}{
		"wrong sector":     {winningType, rnd, commitments(sectors[0:1]), 1000, "not given"},
		"wrong randomness": {winningType, other, good, 1000, "does not lead"},
		"wrong miner":      {winningType, rnd, good, 1001, "miner"},
		"as window post":   {"StackedDrgWindow2KiBV1_2", rnd, good, 1000, "chain proof type"},
		"other size":       {"StackedDrgWinning8MiBV1", rnd, good, 1000, "chain proof type"},
	} {
		err := Verify(tc.miner, tc.typ, tc.rnd, tc.sectors, res.Proof)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
	// A WindowPoSt proof (10 challenges) is not a WinningPoSt proof, even
	// with the header's proof type rewritten.
	win, err := Prover{}.Prove(ctx, 1000, proofType, rnd, sectors[1:2])
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), win.Proof...)
	forged[16] = 0
	if err := Verify(1000, winningType, rnd, good, forged); err == nil || !strings.Contains(err.Error(), "challenges") {
		t.Errorf("window proof relabelled as winning: err = %v", err)
	}
	flipped := append([]byte(nil), res.Proof...)
	flipped[len(flipped)-40] ^= 1
	if err := Verify(1000, winningType, rnd, good, flipped); err == nil {
		t.Error("flipped byte accepted")
	}
}
