package prover_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// buildVSM builds the vsm binary into a temporary directory, so the test
// runs the real `vsm wdpost` child.
func buildVSM(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vsm")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/vsm-project/vsm/cmd/vsm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build vsm: %v\n%s", err, out)
	}
	return bin
}

func createSectors(t testing.TB, dir string, miner uint64, n int) []prover.Replica {
	t.Helper()
	reps := make([]prover.Replica, n)
	for i := range reps {
		s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: miner, Number: uint64(i + 1), Size: sectorfile.Size2KiB, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = prover.Replica{SectorID: s.Number, CommR: prover.Bytes32(s.CommR), CacheDir: s.Paths.Cache, SealedFile: s.Paths.Sealed}
	}
	return reps
}

func TestEndToEndRealChildren(t *testing.T) {
	const miner = 1000
	const proofType = "StackedDrgWindow2KiBV1_2"
	bin := buildVSM(t)
	dir := t.TempDir()
	reps := createSectors(t, dir, miner, 20)

	block := prover.ProcessorConfig{Bin: bin, Args: []string{"wdpost", "--parallel-reads", "4"}, Concurrent: 2, Weight: 1, ReadyTimeoutSecs: 10}
	sup := startSupervisor(t, prover.Config{WdPost: []prover.ProcessorConfig{block, block}}, prover.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var seed prover.Bytes32
	copy(seed[:], "vsm end-to-end test randomness!!")
	seed[31] &= 0x3f
	pp, _ := sectorfile.PoStProofByName(proofType)
	part := pp.PartitionSectors

	// Prove every partition at once through both children; verify each.
	var wg sync.WaitGroup
	for lo := 0; lo < len(reps); lo += part {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := reps[lo:min(lo+part, len(reps))]
			out, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: batch, Seed: seed})
			if err != nil {
				t.Error(err)
				return
			}
			if len(out.Faults) != 0 || len(out.Proofs) != 1 {
				t.Errorf("partition at %d: faults %v, %d proofs", lo, out.Faults, len(out.Proofs))
				return
			}
			if err := engine.Verify(miner, proofType, seed, commitments(batch), out.Proofs[0]); err != nil {
				t.Errorf("partition at %d: %v", lo, err)
			}
			// A proof must not verify for another partition's sectors.
			other := reps[(lo+part)%len(reps) : (lo+part)%len(reps)+part]
			if engine.Verify(miner, proofType, seed, commitments(other), out.Proofs[0]) == nil {
				t.Errorf("partition at %d: proof verified for other sectors", lo)
			}
		}()
	}
	wg.Wait()
	capa := sup.Capacity()
	for _, c := range capa.Children {
		if c.Proven == 0 || c.SecondsPerPartition <= 0 {
			t.Errorf("child %s proved %d partitions (%.4fs each); both children should have worked", c.Name, c.Proven, c.SecondsPerPartition)
		}
	}

	// Break two sectors: corrupt sector 5's replica, delete sector 12's cache.
	data, err := os.ReadFile(reps[4].SealedFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(reps[4].SealedFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(reps[11].CacheDir); err != nil {
		t.Fatal(err)
	}
	checks, err := sup.CheckSectors(ctx, prover.CheckRequest{MinerID: miner, ProofType: proofType, Replicas: reps, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	wantBad := map[uint64]string{5: "does not hash to the tree-r-last root", 12: "p_aux"}
	for i, c := range checks {
		if c.SectorID != reps[i].SectorID {
			t.Fatalf("check %d is for sector %d, want %d", i, c.SectorID, reps[i].SectorID)
		}
		want, bad := wantBad[c.SectorID]
		if c.Good == bad || (bad && !strings.Contains(c.Reason, want)) {
			t.Errorf("sector %d: good=%v reason %q; want faulty=%v with %q", c.SectorID, c.Good, c.Reason, bad, want)
		}
	}

	// Proving the partition with the corrupt sector still proves the other.
	out, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: reps[4:6], Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Faults) != 1 || out.Faults[0] != 5 || out.FaultReasons["5"] == "" {
		t.Fatalf("faults %v reasons %v", out.Faults, out.FaultReasons)
	}
	if err := engine.Verify(miner, proofType, seed, commitments(reps[5:6]), out.Proofs[0]); err != nil {
		t.Fatal(err)
	}
}

func commitments(reps []prover.Replica) []engine.SectorCommitment {
	out := make([]engine.SectorCommitment, len(reps))
	for i, r := range reps {
		out[i] = engine.SectorCommitment{ID: r.SectorID, CommR: r.CommR}
	}
	return out
}
