package devnet

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/filecoin-project/go-state-types/abi"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// FFIEngine seals the devnet's sectors and verifies their proofs with
// filecoin-ffi, through vsm-ffi-prover: `sector create` seals each sector
// (PreCommit 1 and 2 on the CPU) and long-lived `wdpost` children verify
// every WindowPoSt and WinningPoSt with the library a chain node uses. With
// it, the devnet accepts only real SNARKs (made with the parameters in
// FIL_PROOFS_PARAMETER_CACHE).
type FFIEngine struct {
	bin string
	sup *prover.Supervisor
	log *zap.Logger
}

// NewFFIEngine starts children verifier processes of bin (vsm-ffi-prover).
func NewFFIEngine(ctx context.Context, bin string, children int, log *zap.Logger) (*FFIEngine, error) {
	if bin == "" {
		return nil, errors.New("ffi engine: no vsm-ffi-prover binary given (build it with 'make ffi')")
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("ffi engine: %s: %w (build it with 'make ffi')", bin, err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	block := prover.ProcessorConfig{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 60}
	cfg := prover.Config{}
	for range max(children, 1) {
		cfg.WdPost = append(cfg.WdPost, block)
	}
	sup, err := prover.NewSupervisor(cfg, prover.Options{Logger: log.Named("ffi-verifier")})
	if err != nil {
		return nil, fmt.Errorf("ffi engine: %w", err)
	}
	if err := sup.Start(ctx); err != nil {
		return nil, fmt.Errorf("ffi engine: start %s wdpost: %w", bin, err)
	}
	return &FFIEngine{bin: bin, sup: sup, log: log}, nil
}

// ErrVerifierUnavailable marks a proof the devnet could not check (its
// verifier child crashed or timed out), as opposed to a proof found
// invalid: the devnet refuses the push without an actor exit code.
var ErrVerifierUnavailable = errors.New("devnet proof verifier unavailable")

// Close stops the verifier children.
func (e *FFIEngine) Close(ctx context.Context) error { return e.sup.Close(ctx) }

// VerifyWindowPoSt checks the message's one proof over its sectors.
func (e *FFIEngine) VerifyWindowPoSt(ctx context.Context, v WindowPoStVerifyInfo) error {
	return e.verify(ctx, prover.VerifyWindowPoSt, v.Miner, v.ProofType, v.Randomness, v.Sectors, v.Proof)
}

// MaxWindowPoStProofSize is a Groth16 proof's size: 192 bytes a partition.
func (e *FFIEngine) MaxWindowPoStProofSize(abi.RegisteredPoStProof) (int, error) {
	return fullnode.MaxPoStProofSize, nil
}

// VerifyWinningPoSt checks a block's WinningPoSt.
func (e *FFIEngine) VerifyWinningPoSt(ctx context.Context, v WinningPoStVerifyInfo) error {
	return e.verify(ctx, prover.VerifyWinningPoSt, v.Miner, v.ProofType, v.Randomness, v.Sectors, v.Proof)
}

// GenerateWinningPoStSectorChallenge is the same computation for both
// engines (rust-fil-proofs' generate_sector_challenge); prover/ffi's tests
// check the Go version against filecoin-ffi's.
func (e *FFIEngine) GenerateWinningPoStSectorChallenge(ctx context.Context, t abi.RegisteredPoStProof, miner uint64, randomness [32]byte, eligible uint64) ([]uint64, error) {
	return BuiltinVerifier{}.GenerateWinningPoStSectorChallenge(ctx, t, miner, randomness, eligible)
}

func (e *FFIEngine) verify(ctx context.Context, kind string, miner uint64, t abi.RegisteredPoStProof, rnd [32]byte, sectors []SectorCommitment, proof []byte) error {
	var pp sectorfile.PoStProof
	var err error
	if kind == prover.VerifyWinningPoSt {
		pp, err = sectorfile.WinningPoStProofFromChain(int64(t))
	} else {
		pp, err = sectorfile.PoStProofFromChain(int64(t))
	}
	if err != nil {
		return err
	}
	task := prover.VerifyPoStTask{Verify: kind, MinerID: miner, ProofType: pp.Name, Randomness: rnd, Proof: proof}
	for _, s := range sectors {
		task.Sectors = append(task.Sectors, prover.VerifySector{SectorID: s.Number, CommR: s.CommR})
	}
	out, err := e.sup.Verify(ctx, task)
	if err != nil {
		return fmt.Errorf("%w: filecoin-ffi verifier child: %v", ErrVerifierUnavailable, err)
	}
	if !out.Valid {
		return fmt.Errorf("filecoin-ffi: %s", out.Reason)
	}
	return nil
}

// SealSector seals a real sector with `vsm-ffi-prover sector create`.
func (e *FFIEngine) SealSector(ctx context.Context, miner, number, size uint64, dir string) ([32]byte, error) {
	var commR [32]byte
	cmd := exec.CommandContext(ctx, e.bin, "sector", "create", "--miner", strconv.FormatUint(miner, 10),
		"--number", strconv.FormatUint(number, 10), "--size", sectorfile.FormatSize(size), "--dir", dir, "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return commR, fmt.Errorf("%s sector create: %w: %s", e.bin, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var s struct {
		CommR string `json:"comm_r"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return commR, fmt.Errorf("%s sector create printed %q: %w", e.bin, out, err)
	}
	raw, err := hex.DecodeString(s.CommR)
	if err != nil || len(raw) != 32 {
		return commR, fmt.Errorf("%s sector create: comm_r %q is not 32 bytes of hex", e.bin, s.CommR)
	}
	copy(commR[:], raw)
	return commR, nil
}

// DefaultFFIProver is where the devnet looks for vsm-ffi-prover when no
// path is given: $VSM_FFI_PROVER, else beside the running binary (make
// ffi puts both in bin/), else on the PATH.
func DefaultFFIProver() string {
	if p := os.Getenv("VSM_FFI_PROVER"); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vsm-ffi-prover")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "vsm-ffi-prover"
}
