package engine

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

// TestProveUnionCanonical: a message's proof covers the union of its
// partitions' sectors. Whatever order the task lists them in, the proof is
// the same bytes, with the sectors ascending, and it verifies against the
// sorted union (what the devnet's actor hands the verifier). A proof whose
// sectors were reordered or repeated is refused.
func TestProveUnionCanonical(t *testing.T) {
	ctx := context.Background()
	sectors := makeSectors(t, t.TempDir(), 1000, 6)
	var rnd [32]byte
	rnd[7] = 3
	sorted, err := Prover{Parallel: 3}.Prove(ctx, 1000, proofType, rnd, sectors)
	if err != nil {
		t.Fatal(err)
	}
	// Two "partitions" {1,3,5} and {2,4,6} listed one after the other,
	// then reversed.
	for _, order := range [][]int{{0, 2, 4, 1, 3, 5}, {5, 4, 3, 2, 1, 0}} {
		var task []Sector
		for _, i := range order {
			task = append(task, sectors[i])
		}
		res, err := Prover{Parallel: 2}.Prove(ctx, 1000, proofType, rnd, task)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Proof, sorted.Proof) {
			t.Fatalf("task order %v gave different proof bytes", order)
		}
		if !slices.Equal(res.Proven, []uint64{1, 2, 3, 4, 5, 6}) {
			t.Fatalf("Proven = %v, want ascending 1..6", res.Proven)
		}
		rev := commitments(task) // the verifier may be given any order
		if err := Verify(1000, proofType, rnd, rev, res.Proof); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}

	p, err := decodeProof(sorted.Proof)
	if err != nil {
		t.Fatal(err)
	}
	pp, geo := mustGeometry(t)
	swapped := append([]SectorProof(nil), p.Sectors...)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	dup := append([]SectorProof(nil), p.Sectors...)
	dup[1] = dup[0]
	for name, secs := range map[string][]SectorProof{"swapped": swapped, "repeated": dup} {
		bad := encodeProof(1000, pp, geo, secs)
		err := Verify(1000, proofType, rnd, commitments(sectors), bad)
		if err == nil || !strings.Contains(err.Error(), "ascending") {
			t.Errorf("%s sectors: Verify = %v, want an ascending-order error", name, err)
		}
	}
}

func mustGeometry(t *testing.T) (sectorfile.PoStProof, int) {
	t.Helper()
	pp, err := sectorfile.PoStProofByName(proofType)
	if err != nil {
		t.Fatal(err)
	}
	geo, err := sectorfile.GeometryFor(pp.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	return pp, geo.Depth
}
