package prover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
)

// TestBuiltinChildVerifies: the built-in child (`vsm wdpost`'s handler)
// answers verify tasks with engine.Verify's verdict, so the runner can
// check a proof before sending it: valid for the proof over exactly its
// sectors, invalid with the reason for a corrupted proof, other sectors
// or other randomness, and an error for a task it cannot check.
func TestBuiltinChildVerifies(t *testing.T) {
	const miner = 1000
	const proofType = "StackedDrgWindow2KiBV1_2"
	ctx := context.Background()
	reps := createSectors(t, t.TempDir(), miner, 3)
	h := prover.PoStHandler(engine.Prover{}, nil)
	seed := prover.Bytes32{7, 7, 7}
	raw, _ := json.Marshal(prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: reps[:2], Seed: seed})
	out, err := h(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	proof := out.(prover.WindowPoStOutput).Proofs[0]
	sectorsOf := func(rs []prover.Replica) []prover.VerifySector {
		var out []prover.VerifySector
		for _, r := range rs {
			out = append(out, prover.VerifySector{SectorID: r.SectorID, CommR: r.CommR})
		}
		return out
	}
	corrupt := bytes.Clone(proof)
	corrupt[len(corrupt)-1] ^= 0xff
	good := prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: proofType, Randomness: seed, Sectors: sectorsOf(reps[:2]), Proof: proof}
	tests := []struct {
		name      string
		edit      func(*prover.VerifyPoStTask)
		valid     bool
		wantError string
	}{
		{"the proof over its sectors", func(*prover.VerifyPoStTask) {}, true, ""},
		{"a corrupted proof", func(v *prover.VerifyPoStTask) { v.Proof = corrupt }, false, ""},
		{"other sectors", func(v *prover.VerifyPoStTask) { v.Sectors = sectorsOf(reps[1:]) }, false, ""},
		{"other randomness", func(v *prover.VerifyPoStTask) { v.Randomness = prover.Bytes32{8} }, false, ""},
		{"winning kind with a window proof type", func(v *prover.VerifyPoStTask) { v.Verify = prover.VerifyWinningPoSt }, false, "disagree"},
		{"no sectors", func(v *prover.VerifyPoStTask) { v.Sectors = nil }, false, "no sectors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := good
			tt.edit(&task)
			raw, _ := json.Marshal(task)
			out, err := h(ctx, raw)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("got %+v, %v; want an error with %q", out, err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v := out.(prover.VerifyPoStOutput)
			if v.Valid != tt.valid || (!v.Valid && v.Reason == "") {
				t.Fatalf("verdict %+v, want valid %v (with a reason when invalid)", v, tt.valid)
			}
		})
	}
}
