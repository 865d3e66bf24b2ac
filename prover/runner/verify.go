package runner

import (
	"context"
	"fmt"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
)

// Verifier checks a proof as the chain would; *prover.Supervisor
// implements it (its children verify with their own engine). When
// Config.Prover implements it, the runner verifies every WindowPoSt proof
// before sending it, as Lotus's runPoStCycle does.
type Verifier interface {
	Verify(ctx context.Context, task prover.VerifyPoStTask) (prover.VerifyPoStOutput, error)
}

// tracingProver is a Prover that says which child answered and can be
// asked to prove on another one; *prover.Supervisor implements it. A proof
// that fails verification is made again elsewhere, in case that child's
// GPU or view of the files is to blame.
type tracingProver interface {
	ProveTraced(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, prover.Trace, error)
	ProveElsewhere(ctx context.Context, task prover.WindowPoStTask, avoid string) (prover.WindowPoStOutput, prover.Trace, error)
}

// maxInvalidProofs is how many proofs of one batch may fail verification
// before the batch is given up: the first one is made again once.
const maxInvalidProofs = 2

// prove sends task to a child, to one other than avoid when avoid is set
// and the prover can choose, and says which child answered ("" when the
// prover cannot tell).
func (r *Runner) prove(ctx context.Context, task prover.WindowPoStTask, avoid string) (prover.WindowPoStOutput, string, error) {
	tp, ok := r.cfg.Prover.(tracingProver)
	switch {
	case !ok:
		out, err := r.cfg.Prover.Prove(ctx, task)
		return out, "", err
	case avoid != "":
		out, tr, err := tp.ProveElsewhere(ctx, task, avoid)
		return out, tr.Child, err
	default:
		out, tr, err := tp.ProveTraced(ctx, task)
		return out, tr.Child, err
	}
}

// verifiedBatch proves batch and verifies its proof against the sectors'
// SealedCIDs on chain with the same randomness. A proof that does not
// verify is logged, counted and made again once (on another child when
// there is one); if that one fails too the batch comes back with no proof
// and the reason in invalid, so nothing the chain would refuse is sent.
// When no child can verify, the proof is used unverified (logged once).
// The SealedCIDs are read before proving, as Lotus reads its sector infos,
// so a chain read that fails costs no proof.
func (r *Runner) verifiedBatch(ctx context.Context, miner uint64, deadline uint64, mi minerInfo, seed [32]byte, parts []fullnode.Partition, batch []uint64) (*batchProof, error) {
	var commRs map[uint64]prover.Bytes32
	if r.verifier != nil {
		var err error
		if commRs, err = r.sealedCommRs(ctx, miner, parts, batch); err != nil {
			return nil, err
		}
	}
	bp, err := r.proveBatch(ctx, miner, mi, seed, parts, batch, "")
	for try := 1; err == nil && bp.proof != nil && r.verifier != nil; try++ {
		why, verr := r.verifyBatch(ctx, miner, mi, seed, bp, commRs)
		if verr != nil {
			return nil, verr
		}
		if why == "" {
			return bp, nil
		}
		r.metrics.invalidProofs.Inc()
		r.log.Error("generated incorrect window post proof", zap.Uint64("miner", miner), zap.Uint64("deadline", deadline), zap.Uint64s("batch", batch),
			zap.Int("sectors", len(bp.sectors)), zap.String("child", bp.child), zap.Int("try", try), zap.String("reason", why))
		if try == maxInvalidProofs {
			from := ""
			if bp.child != "" {
				from = fmt.Sprintf(", the last from child %s", bp.child)
			}
			return &batchProof{partitions: batch, seed: seed, skipped: bp.skipped, proven: map[uint64]int{}, uuid: bp.uuid,
				invalid: fmt.Sprintf("%d proofs failed self-verification%s: %s", try, from, why)}, nil
		}
		bp, err = r.proveBatch(ctx, miner, mi, seed, parts, batch, bp.child)
	}
	return bp, err
}

// sealedCommRs reads the on-chain SealedCIDs (as CommRs) of the sectors
// to prove in the batch's partitions.
func (r *Runner) sealedCommRs(ctx context.Context, miner uint64, parts []fullnode.Partition, batch []uint64) (map[uint64]prover.Bytes32, error) {
	toProve, err := batchToProve(parts, batch)
	if err != nil {
		return nil, err
	}
	filter, err := bitfield.MultiMerge(toProve...)
	if err != nil {
		return nil, fmt.Errorf("partitions %v: %w", batch, err)
	}
	infos, err := r.cfg.Chain.StateMinerSectors(ctx, fullnode.IDAddress(miner), &filter, nil)
	if err != nil {
		return nil, fmt.Errorf("sector infos to verify the proof of partitions %v: %w", batch, err)
	}
	commRs := make(map[uint64]prover.Bytes32, len(infos))
	for _, si := range infos {
		commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
		if err != nil {
			return nil, fmt.Errorf("sector %d: SealedCID %s: %w", si.SectorNumber, si.SealedCID, err)
		}
		commRs[uint64(si.SectorNumber)] = prover.Bytes32(commR)
	}
	return commRs, nil
}

// verifyBatch asks a child to verify bp's proof over its sectors with
// their on-chain CommRs. It returns why the proof is invalid ("" when it
// is valid or cannot be checked).
func (r *Runner) verifyBatch(ctx context.Context, miner uint64, mi minerInfo, seed [32]byte, bp *batchProof, commRs map[uint64]prover.Bytes32) (string, error) {
	task := prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: mi.post.Name, Randomness: prover.Bytes32(seed), Proof: bp.proof}
	for _, n := range bp.sectors {
		commR, ok := commRs[n]
		if !ok {
			return "", fmt.Errorf("sector %d of partitions %v is not among the miner's sectors on chain", n, bp.partitions)
		}
		task.Sectors = append(task.Sectors, prover.VerifySector{SectorID: n, CommR: commR})
	}
	out, err := r.verifier.Verify(ctx, task)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		r.metrics.unverifiedProofs.Inc()
		if !r.verifyDown.Swap(true) {
			r.log.Warn("self-verification of window post proofs is unavailable (no child verifies); sending proofs unverified", zap.Error(err))
		}
		return "", nil
	}
	if r.verifyDown.Swap(false) {
		r.log.Info("self-verification of window post proofs works again")
	}
	if !out.Valid {
		if out.Reason == "" {
			return "the verifier gave no reason", nil
		}
		return out.Reason, nil
	}
	return "", nil
}
