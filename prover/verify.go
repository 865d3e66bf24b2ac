package prover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// Verification kinds of a VerifyPoStTask.
const (
	VerifyWindowPoSt  = "window_post"
	VerifyWinningPoSt = "winning_post"
)

// VerifyPoStTask asks a child to verify a proof, as the chain's miner actor
// (WindowPoSt) or block validation (WinningPoSt) would. It is vsm's own
// extension of the damocles protocol, told apart from proving tasks by its
// "verify" key; the devnet sends it to a filecoin-ffi child so that real
// SNARKs are checked by the same library a chain node uses.
type VerifyPoStTask struct {
	// Verify is VerifyWindowPoSt or VerifyWinningPoSt.
	Verify  string `json:"verify"`
	MinerID uint64 `json:"miner_id"`
	// ProofType is the proofs-api name, as in WindowPoStTask.
	ProofType string `json:"proof_type"`
	// Randomness is the challenge seed with seed[31] &= 0x3f applied.
	Randomness Bytes32 `json:"randomness"`
	// Sectors are the challenged sectors: for WindowPoSt every sector the
	// proof covers, for WinningPoSt the challenged one(s).
	Sectors []VerifySector `json:"sectors"`
	// Proof is the proof bytes (for WindowPoSt one message's single proof,
	// the concatenated partition proofs).
	Proof []byte `json:"proof"`
}

// VerifySector is one challenged sector of a VerifyPoStTask.
type VerifySector struct {
	SectorID uint64  `json:"sector_id"`
	CommR    Bytes32 `json:"comm_r"`
}

// VerifyPoStOutput is the answer to a VerifyPoStTask. An invalid proof is an
// answer (Valid false, with the library's reason when it gave one), not a
// protocol error; err_msg is kept for tasks that could not be checked at all.
type VerifyPoStOutput struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
}

// IsVerifyTask reports whether a raw task is a VerifyPoStTask.
func IsVerifyTask(raw json.RawMessage) bool {
	var peek struct {
		Verify *string `json:"verify"`
	}
	return json.Unmarshal(raw, &peek) == nil && peek.Verify != nil
}

// DecodeVerifyTask parses and checks a VerifyPoStTask.
func DecodeVerifyTask(raw json.RawMessage) (VerifyPoStTask, error) {
	var t VerifyPoStTask
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, fmt.Errorf("task is not a verify task: %w", err)
	}
	switch {
	case t.Verify != VerifyWindowPoSt && t.Verify != VerifyWinningPoSt:
		return t, fmt.Errorf("verify %q: want %q or %q", t.Verify, VerifyWindowPoSt, VerifyWinningPoSt)
	case t.ProofType == "":
		return t, errors.New("verify task has no proof_type")
	case len(t.Sectors) == 0:
		return t, errors.New("verify task has no sectors")
	case len(t.Proof) == 0:
		return t, errors.New("verify task has no proof")
	}
	return t, nil
}

// Verify sends a VerifyPoStTask to a child and returns its verdict.
func (s *Supervisor) Verify(ctx context.Context, task VerifyPoStTask) (VerifyPoStOutput, error) {
	raw, err := json.Marshal(task)
	if err != nil {
		return VerifyPoStOutput{}, fmt.Errorf("encode verify task: %w", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	out, c, _, err := s.call(ctx, work{kind: KindWdPost}, raw, nil)
	if err != nil {
		return VerifyPoStOutput{}, fmt.Errorf("verify %s of miner t0%d: %w", task.Verify, task.MinerID, err)
	}
	var res VerifyPoStOutput
	if err := json.Unmarshal(out, &res); err != nil {
		return VerifyPoStOutput{}, fmt.Errorf("verify %s of miner t0%d: child %s answered with output that is not a verdict: %w", task.Verify, task.MinerID, c.name, err)
	}
	return res, nil
}

// VerifyBuiltin checks a built-in engine proof, as `vsm wdpost` answers a
// VerifyPoStTask. A proof that does not verify is a verdict (Valid false,
// engine.Verify's reason); a task whose kind does not match its proof type
// cannot be checked and is an error.
func VerifyBuiltin(task VerifyPoStTask) (VerifyPoStOutput, error) {
	pp, err := sectorfile.PoStProofByName(task.ProofType)
	if err != nil {
		return VerifyPoStOutput{}, err
	}
	if pp.Winning != (task.Verify == VerifyWinningPoSt) {
		return VerifyPoStOutput{}, fmt.Errorf("verify %s with proof type %s: the kind and the proof type disagree", task.Verify, task.ProofType)
	}
	sectors := make([]engine.SectorCommitment, len(task.Sectors))
	for i, s := range task.Sectors {
		sectors[i] = engine.SectorCommitment{ID: s.SectorID, CommR: s.CommR}
	}
	if err := engine.Verify(task.MinerID, task.ProofType, task.Randomness, sectors, task.Proof); err != nil {
		return VerifyPoStOutput{Valid: false, Reason: err.Error()}, nil
	}
	return VerifyPoStOutput{Valid: true}, nil
}
