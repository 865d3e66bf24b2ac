package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ffi "github.com/filecoin-project/filecoin-ffi"
	"github.com/filecoin-project/go-state-types/abi"
	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// These tests run the real circuit: filecoin-ffi built from source for the
// CPU, parameters from `make params` (a local setup). They need
// FIL_PROOFS_PARAMETER_CACHE; `make test-ffi` sets it.
func TestMain(m *testing.M) {
	if _, err := checkParams(); err != nil {
		os.Stderr.WriteString("ffi tests need parameters: " + err.Error() + "\n")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

const miner = 1000

type testSector struct {
	sealed
	num uint64
}

func sealSectors(t testing.TB, dir string, size uint64, first uint64, n int) []testSector {
	t.Helper()
	pp, err := sectorfile.PoStProofForSize(size)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]testSector, n)
	for i := range out {
		num := first + uint64(i)
		s, err := sealOne(dir, miner, num, size, abi.RegisteredSealProof(pp.SealProof))
		if err != nil {
			t.Fatalf("seal sector %d: %v", num, err)
		}
		out[i] = testSector{sealed: s, num: num}
	}
	return out
}

func replicas(secs []testSector) []prover.Replica {
	reps := make([]prover.Replica, len(secs))
	for i, s := range secs {
		var commR prover.Bytes32
		copy(commR[:], s.commR)
		reps[i] = prover.Replica{SectorID: s.num, CommR: commR, CacheDir: s.paths.Cache, SealedFile: s.paths.Sealed}
	}
	return reps
}

func verifySectors(reps []prover.Replica) []prover.VerifySector {
	out := make([]prover.VerifySector, len(reps))
	for i, r := range reps {
		out[i] = prover.VerifySector{SectorID: r.SectorID, CommR: r.CommR}
	}
	return out
}

func seedOf(s string) prover.Bytes32 {
	var b prover.Bytes32
	copy(b[:], s)
	b[31] &= 0x3f
	return b
}

func call(t testing.TB, h prover.Handler, task any) (json.RawMessage, error) {
	t.Helper()
	raw, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	out, err := h(context.Background(), raw)
	if err != nil {
		return nil, err
	}
	enc, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return enc, nil
}

func proveWindowTask(t testing.TB, h prover.Handler, proofType string, reps []prover.Replica, seed prover.Bytes32) prover.WindowPoStOutput {
	t.Helper()
	raw, err := call(t, h, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: reps, Seed: seed})
	if err != nil {
		t.Fatalf("window post: %v", err)
	}
	var out prover.WindowPoStOutput
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func verdict(t testing.TB, h prover.Handler, task prover.VerifyPoStTask) prover.VerifyPoStOutput {
	t.Helper()
	raw, err := call(t, h, task)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var v prover.VerifyPoStOutput
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWindowPoStBatch proves five 2 KiB sectors (three circuit partitions
// of two) as one proof, the shape of one SubmitWindowedPoSt, and checks the
// verifier accepts it and refuses it tampered, with other randomness, or
// over other sectors.
func TestWindowPoStBatch(t *testing.T) {
	const proofType = "StackedDrgWindow2KiBV1_2"
	h := handler(zaptest.NewLogger(t), 4)
	reps := replicas(sealSectors(t, t.TempDir(), 2<<10, 1, 5))
	seed := seedOf("vsm ffi window post test seed...")

	start := time.Now()
	out := proveWindowTask(t, h, proofType, reps, seed)
	t.Logf("window post of 5 sectors: %v", time.Since(start))
	if len(out.Proofs) != 1 || len(out.Faults) != 0 {
		t.Fatalf("got %d proofs and faults %v, want one proof and no faults", len(out.Proofs), out.Faults)
	}
	if got, want := len(out.Proofs[0]), 3*192; got != want {
		t.Fatalf("proof is %d bytes, want %d (three partition proofs of 192)", got, want)
	}
	good := prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: proofType, Randomness: seed,
		Sectors: verifySectors(reps), Proof: out.Proofs[0]}
	if v := verdict(t, h, good); !v.Valid {
		t.Fatalf("the proof does not verify: %s", v.Reason)
	}

	tampered := good
	tampered.Proof = append([]byte(nil), good.Proof...)
	tampered.Proof[100] ^= 0x01
	otherSeed := good
	otherSeed.Randomness = seedOf("some other randomness entirely..")
	fewerSectors := good
	fewerSectors.Sectors = good.Sectors[:4]
	truncated := good
	truncated.Proof = good.Proof[:2*192]
	for name, task := range map[string]prover.VerifyPoStTask{
		"tampered proof": tampered, "other randomness": otherSeed,
		"a sector left out": fewerSectors, "truncated proof": truncated,
	} {
		if v := verdict(t, h, task); v.Valid {
			t.Errorf("%s: verified, want invalid", name)
		}
	}
}

// TestCorruptSectorIsAFault changes a sealed file: the vanilla check finds
// the sector faulty before any SNARK, the prover reports it as a fault and
// proves the rest, and that proof verifies without the faulty sector.
func TestCorruptSectorIsAFault(t *testing.T) {
	const proofType = "StackedDrgWindow2KiBV1_2"
	h := handler(zaptest.NewLogger(t), 4)
	reps := replicas(sealSectors(t, t.TempDir(), 2<<10, 1, 4))
	bad := reps[2]
	garbage := make([]byte, 2<<10)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	if err := os.WriteFile(bad.SealedFile, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	seed := seedOf("vsm ffi fault test seed.........")

	raw, err := call(t, h, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: reps, Seed: seed, CheckOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var check prover.WindowPoStOutput
	if err := json.Unmarshal(raw, &check); err != nil {
		t.Fatal(err)
	}
	if len(check.Faults) != 1 || check.Faults[0] != bad.SectorID {
		t.Fatalf("check faults %v, want [%d]", check.Faults, bad.SectorID)
	}

	out := proveWindowTask(t, h, proofType, reps, seed)
	if len(out.Faults) != 1 || out.Faults[0] != bad.SectorID || len(out.Proofs) != 1 {
		t.Fatalf("prove: faults %v and %d proofs, want fault [%d] and one proof", out.Faults, len(out.Proofs), bad.SectorID)
	}
	rest := append(append([]prover.Replica(nil), reps[:2]...), reps[3:]...)
	v := verdict(t, h, prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: proofType, Randomness: seed,
		Sectors: verifySectors(rest), Proof: out.Proofs[0]})
	if !v.Valid {
		t.Fatalf("proof without the faulty sector does not verify: %s", v.Reason)
	}
}

// TestWinningPoSt proves the sector the chain's challenge picks and checks
// the verifier accepts it and refuses it for another sector.
func TestWinningPoSt(t *testing.T) {
	const proofType = "StackedDrgWinning2KiBV1"
	h := handler(zaptest.NewLogger(t), 4)
	reps := replicas(sealSectors(t, t.TempDir(), 2<<10, 1, 3))
	seed := seedOf("vsm ffi winning post seed.......")
	pp, _ := sectorfile.PoStProofByName(proofType)
	idx, err := ffi.GenerateWinningPoStSectorChallenge(abi.RegisteredPoStProof(pp.ChainID), miner, seed[:], uint64(len(reps)))
	if err != nil || len(idx) != 1 {
		t.Fatalf("winning challenge: %v %v", idx, err)
	}
	chosen := reps[idx[0]]
	raw, err := call(t, h, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: []prover.Replica{chosen}, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var out prover.WinningPoStOutput
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Proofs) != 1 {
		t.Fatalf("winning output %s: %v", raw, err)
	}
	task := prover.VerifyPoStTask{Verify: prover.VerifyWinningPoSt, MinerID: miner, ProofType: proofType, Randomness: seed,
		Sectors: verifySectors([]prover.Replica{chosen}), Proof: out.Proofs[0]}
	if v := verdict(t, h, task); !v.Valid {
		t.Fatalf("winning proof does not verify: %s", v.Reason)
	}
	other := reps[(idx[0]+1)%uint64(len(reps))]
	task.Sectors = verifySectors([]prover.Replica{other})
	if v := verdict(t, h, task); v.Valid {
		t.Fatal("winning proof verified for a sector it does not cover")
	}
}

// TestWindowPoSt8MiB seals and proves one 8 MiB sector.
func TestWindowPoSt8MiB(t *testing.T) {
	const proofType = "StackedDrgWindow8MiBV1_2"
	h := handler(zaptest.NewLogger(t), 4)
	start := time.Now()
	reps := replicas(sealSectors(t, t.TempDir(), 8<<20, 1, 1))
	t.Logf("seal one 8 MiB sector: %v", time.Since(start))
	seed := seedOf("vsm ffi 8MiB window post seed...")
	out := proveWindowTask(t, h, proofType, reps, seed)
	if len(out.Proofs) != 1 || len(out.Proofs[0]) != 192 {
		t.Fatalf("got %d proofs, want one of 192 bytes", len(out.Proofs))
	}
	v := verdict(t, h, prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: proofType, Randomness: seed,
		Sectors: verifySectors(reps), Proof: out.Proofs[0]})
	if !v.Valid {
		t.Fatalf("8 MiB proof does not verify: %s", v.Reason)
	}
}

// TestMissingParameters: the child refuses to start and names the folder
// and the command.
func TestMissingParameters(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("FIL_PROOFS_PARAMETER_CACHE", empty)
	_, err := checkParams()
	if err == nil {
		t.Fatal("no error for an empty parameter folder")
	}
	for _, want := range []string{empty, "make params", "lotus fetch-params"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestRealChildProcesses runs the built binary (VSM_FFI_PROVER, set by
// make test-ffi) as two ext-prover children under the supervisor, as a
// node does, and has them prove and verify; a child started without
// parameters fails to start with the reason.
func TestRealChildProcesses(t *testing.T) {
	bin := os.Getenv("VSM_FFI_PROVER")
	if bin == "" {
		t.Fatal("VSM_FFI_PROVER must name the built vsm-ffi-prover (make test-ffi sets it)")
	}
	const proofType = "StackedDrgWindow2KiBV1_2"
	reps := replicas(sealSectors(t, t.TempDir(), 2<<10, 1, 6))
	block := prover.ProcessorConfig{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 30,
		Envs: map[string]string{"FIL_PROOFS_PARAMETER_CACHE": os.Getenv("FIL_PROOFS_PARAMETER_CACHE")}}
	win := block
	win.Args = []string{"winpost"}
	sup, err := prover.NewSupervisor(prover.Config{WdPost: []prover.ProcessorConfig{block, block}, WinPost: []prover.ProcessorConfig{win}},
		prover.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sup.Close(ctx) }()

	seed := seedOf("vsm ffi real child process seed.")
	for round := range 2 {
		start := time.Now()
		out, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: reps, Seed: seed})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		t.Logf("round %d: 6 sectors proven by a child in %v", round, time.Since(start))
		v, err := sup.Verify(ctx, prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: proofType,
			Randomness: seed, Sectors: verifySectors(reps), Proof: out.Proofs[0]})
		if err != nil || !v.Valid {
			t.Fatalf("round %d: verify: %+v %v", round, v, err)
		}
	}

	// The [[WinPost]] child (vsm-ffi-prover winpost) proves the sector the
	// chain's challenge picks, as --miner asks it for sophon-gateway.
	if got := sup.WinningChildren(); got != prover.KindWinPost {
		t.Fatalf("WinningPoSt goes to the %s children, want the WinPost one", got)
	}
	const winType = "StackedDrgWinning2KiBV1"
	pp, _ := sectorfile.PoStProofByName(winType)
	idx, err := ffi.GenerateWinningPoStSectorChallenge(abi.RegisteredPoStProof(pp.ChainID), miner, seed[:], uint64(len(reps)))
	if err != nil || len(idx) != 1 {
		t.Fatalf("winning challenge: %v %v", idx, err)
	}
	chosen := []prover.Replica{reps[idx[0]]}
	win2, err := sup.ProveWinning(ctx, prover.WinningPoStTask{MinerID: miner, ProofType: winType, Replicas: chosen, Seed: seed})
	if err != nil {
		t.Fatalf("winning post on the [[WinPost]] child: %v", err)
	}
	v, err := sup.Verify(ctx, prover.VerifyPoStTask{Verify: prover.VerifyWinningPoSt, MinerID: miner, ProofType: winType,
		Randomness: seed, Sectors: verifySectors(chosen), Proof: win2.Proofs[0]})
	if err != nil || !v.Valid {
		t.Fatalf("winning proof from the [[WinPost]] child: verify %+v %v", v, err)
	}

	// Without parameters the child exits before its ready line, saying why.
	cmd := exec.Command(bin, "wdpost")
	cmd.Env = append(os.Environ(), "FIL_PROOFS_PARAMETER_CACHE="+t.TempDir())
	outb, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "make params") || strings.Contains(string(outb), prover.ReadyLine) {
		t.Fatalf("child without parameters: err %v, output %s", err, outb)
	}
}

// TestSectorCreateOutputImports checks the sealer's lines carry what
// `vsm sector location import` needs.
func TestSectorCreateOutputImports(t *testing.T) {
	bin := os.Getenv("VSM_FFI_PROVER")
	if bin == "" {
		t.Fatal("VSM_FFI_PROVER must name the built vsm-ffi-prover (make test-ffi sets it)")
	}
	dir := t.TempDir()
	out, err := exec.Command(bin, "sector", "create", "--miner", "1000", "--number", "7", "--count", "2", "--dir", dir, "--storage", "fast").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), out)
	}
	for i, l := range lines {
		var got importLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		commR, err := hex.DecodeString(got.CommR)
		if got.Miner != 1000 || got.Number != uint64(7+i) || got.Sealed != "fast" || got.Cache != "fast" || got.Proof != 5 || err != nil || len(commR) != 32 {
			t.Fatalf("line %d: %+v", i, got)
		}
		if _, err := os.Stat(filepath.Join(dir, "sealed", sectorfile.SectorName(1000, got.Number))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWinningChallengeMatchesLibrary checks the Go derivation of the
// WinningPoSt challenged sector (prover/engine, which the devnet uses to
// pick the sector it asks for) against filecoin-ffi's, so the devnet's
// choice is the library's.
func TestWinningChallengeMatchesLibrary(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	pp, _ := sectorfile.PoStProofByName("StackedDrgWinning2KiBV1")
	for i := range 300 {
		minerID := rng.Uint64N(1 << 40)
		var rnd [32]byte
		for j := range rnd {
			rnd[j] = byte(rng.Uint32())
		}
		rnd[31] &= 0x3f
		setLen := 1 + rng.Uint64N(100_000)
		want, err := ffi.GenerateWinningPoStSectorChallenge(abi.RegisteredPoStProof(pp.ChainID), abi.ActorID(minerID), rnd[:], setLen)
		if err != nil {
			t.Fatal(err)
		}
		got, err := engine.WinningSectorChallenges(minerID, rnd, setLen)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("case %d (miner %d, set %d): Go %v, filecoin-ffi %v", i, minerID, setLen, got, want)
		}
	}
}
