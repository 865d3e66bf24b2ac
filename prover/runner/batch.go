package runner

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// maxFaultRetries bounds how many times one batch is proven again after
// its child reported faulty sectors. Every retry drops at least one sector,
// so the loop ends anyway; the bound stops a child that keeps inventing
// faults from eating the window.
const maxFaultRetries = 5

// partitionLimit is how many partitions one SubmitWindowedPoSt carries:
// the configured bound, clamped to what the miner actor accepts for this
// partition size (fullnode.MaxPartitionsPerPoSt). The clamp is here, not
// in the config, so no configuration can make the runner build a message
// the actor refuses. configured <= 0 means "as many as allowed".
func partitionLimit(configured int, partitionSectors uint64) int {
	limit := fullnode.MaxPartitionsPerPoSt(partitionSectors)
	if configured > 0 && configured < limit {
		return configured
	}
	return limit
}

// sectorsToProve is what Lotus proves in a partition: live minus faulty,
// plus recovering (recovering sectors are still faulty until proven).
func sectorsToProve(p fullnode.Partition) (bitfield.BitField, error) {
	live, err := bitfield.SubtractBitField(p.LiveSectors, p.FaultySectors)
	if err != nil {
		return bitfield.BitField{}, err
	}
	return bitfield.MergeBitFields(live, p.RecoveringSectors)
}

// batchToProve is sectorsToProve of each partition of batch, in order.
func batchToProve(parts []fullnode.Partition, batch []uint64) ([]bitfield.BitField, error) {
	out := make([]bitfield.BitField, len(batch))
	for i, idx := range batch {
		if idx >= uint64(len(parts)) {
			return nil, fmt.Errorf("partition %d: the deadline has %d partitions", idx, len(parts))
		}
		toProve, err := sectorsToProve(parts[idx])
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", idx, err)
		}
		out[i] = toProve
	}
	return out, nil
}

// planBatches cuts the partitions in which (ascending) into consecutive
// batches of at most limit partitions: one batch is one message.
func planBatches(which []uint64, limit int) [][]uint64 {
	limit = max(limit, 1)
	var out [][]uint64
	for lo := 0; lo < len(which); lo += limit {
		out = append(out, slices.Clone(which[lo:min(lo+limit, len(which))]))
	}
	return out
}

// batchKey names a batch in the proof cache.
func batchKey(batch []uint64) string {
	parts := make([]string, len(batch))
	for i, p := range batch {
		parts[i] = strconv.FormatUint(p, 10)
	}
	return strings.Join(parts, ",")
}

// batchProof is a proven batch: ONE proof over the sorted union of the
// sectors proven in its partitions, and per partition the sectors skipped
// (unlocatable, or reported faulty by the child).
type batchProof struct {
	partitions []uint64
	seed       [32]byte
	// proof is nil when no sector of the batch could be proven.
	proof   []byte
	sectors []uint64 // proven, ascending: what the proof covers
	skipped map[uint64][]uint64
	proven  map[uint64]int // sectors proven per partition
	retries int            // proofs made again after faults
	// uuid is the MsgUuid of the batch's message, the same on every push
	// of this proof.
	uuid string
	// child is the child that made the proof ("" if the prover does not
	// say).
	child string
	// invalid, when set, is why the batch has no proof: the proofs made
	// failed self-verification, and the batch is not sent.
	invalid string
}

// allSkipped lists every skipped sector of the batch, ascending.
func (b *batchProof) allSkipped() []uint64 {
	var out []uint64
	for _, s := range b.skipped {
		out = append(out, s...)
	}
	slices.Sort(out)
	return out
}

// params builds the batch's message: the partitions with at least one
// proven sector (a partition with nothing to prove is left out, as Lotus
// does: the actor would only mark it faulty), each with its skipped
// sectors, and the one proof. It returns nil params when there is nothing
// to send.
func (b *batchProof) params(deadline uint64, commitEpoch abi.ChainEpoch, commitRand []byte, proofType abi.RegisteredPoStProof) (*miner.SubmitWindowedPoStParams, error) {
	if b.proof == nil {
		return nil, nil
	}
	p := &miner.SubmitWindowedPoStParams{Deadline: deadline, ChainCommitEpoch: commitEpoch, ChainCommitRand: commitRand,
		Proofs: []prooftypes.PoStProof{{PoStProof: proofType, ProofBytes: b.proof}}}
	for _, idx := range b.partitions {
		if b.proven[idx] == 0 {
			continue
		}
		p.Partitions = append(p.Partitions, miner.PoStPartition{Index: idx, Skipped: bitfield.NewFromSet(b.skipped[idx])})
	}
	return p, nil
}

// sent lists the partitions params puts in the message.
func (b *batchProof) sent() []uint64 {
	var out []uint64
	for _, idx := range b.partitions {
		if b.proof != nil && b.proven[idx] > 0 {
			out = append(out, idx)
		}
	}
	return out
}

// setProof takes proof as the batch's proof over the sectors of todo
// (ascending).
func (b *batchProof) setProof(proof []byte, todo []batchSector) {
	b.proof = proof
	for _, s := range todo {
		b.sectors = append(b.sectors, s.rep.SectorID)
		b.proven[s.part]++
	}
}

type batchSector struct {
	rep  prover.Replica
	part uint64
}

// proveBatch proves the partitions of batch as ONE child request whose
// replicas are the union of their sectors to prove, sorted by sector
// number: damocles' window_post task, and what filecoin-ffi's
// GenerateWindowPoSt takes. Sectors without a location here are skipped
// before asking; sectors the child reports faulty are skipped. A child
// that answers with faults AND one proof has left the faulty sectors out
// and proven the others (filecoin-ffi's child, damocles, the built-in
// engine): that proof is used as is, with the faults as the partitions'
// Skipped sectors, which is what the actor verifies. A child that reports
// faults without a proof gets the batch again without them (at most
// maxFaultRetries times).
// avoid names a child not to ask when another can answer ("": any).
func (r *Runner) proveBatch(ctx context.Context, miner uint64, mi minerInfo, seed [32]byte, parts []fullnode.Partition, batch []uint64, avoid string) (*batchProof, error) {
	loc := prover.Locator{Store: r.cfg.Store, Local: r.cfg.Local}
	bp := &batchProof{partitions: batch, seed: seed, skipped: map[uint64][]uint64{}, proven: map[uint64]int{}, uuid: fullnode.NewMsgUUID()}
	var todo []batchSector
	owner := map[uint64]uint64{}
	toProve, err := batchToProve(parts, batch)
	if err != nil {
		return nil, err
	}
	for i, idx := range batch {
		err := toProve[i].ForEach(func(n uint64) error {
			if p, dup := owner[n]; dup {
				return fmt.Errorf("sector %d is in partitions %d and %d", n, p, idx)
			}
			owner[n] = idx
			rep, why := loc.Sector(miner, n, mi.post)
			if why != "" {
				r.log.Warn("sector skipped as faulty", zap.String("sector", sectorfile.SectorName(miner, n)), zap.String("reason", why))
				bp.skipped[idx] = append(bp.skipped[idx], n)
				return nil
			}
			todo = append(todo, batchSector{rep: rep, part: idx})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("partitions %v: %w", batch, err)
		}
	}
	slices.SortFunc(todo, func(a, b batchSector) int { return cmp.Compare(a.rep.SectorID, b.rep.SectorID) })
	for try := 0; len(todo) > 0; try++ {
		if try > maxFaultRetries {
			return nil, fmt.Errorf("partitions %v: the prover still reported faults after %d retries", batch, maxFaultRetries)
		}
		reps := make([]prover.Replica, len(todo))
		for i, s := range todo {
			reps[i] = s.rep
		}
		out, child, err := r.prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: mi.post.Name, Replicas: reps, Seed: prover.Bytes32(seed)}, avoid)
		bp.child = child
		if err != nil {
			return nil, fmt.Errorf("partitions %v (%d sectors): %w", batch, len(reps), err)
		}
		if len(out.Faults) > 0 {
			faulty := make(map[uint64]bool, len(out.Faults))
			for _, f := range out.Faults {
				faulty[f] = true
			}
			kept := todo[:0:0]
			var dropped []batchSector
			for _, s := range todo {
				if faulty[s.rep.SectorID] {
					dropped = append(dropped, s)
					continue
				}
				kept = append(kept, s)
			}
			if len(dropped) == 0 {
				return nil, fmt.Errorf("partitions %v: the prover reported faults %v, none of them in the task", batch, out.Faults)
			}
			for _, s := range dropped {
				bp.skipped[s.part] = append(bp.skipped[s.part], s.rep.SectorID)
			}
			todo = kept
			if len(out.Proofs) == 1 && len(dropped) == len(faulty) && len(kept) > 0 {
				// The child left the faulty sectors out and proved the
				// others, in sector order (filecoin-ffi's proveWindow,
				// damocles, the built-in engine): exactly what the actor
				// verifies with the faults as the partitions' Skipped.
				r.log.Warn("prover found faulty sectors; skipping them, the proof covers the others", zap.Uint64("miner", miner), zap.Uint64s("partitions", batch),
					zap.Uint64s("sectors", out.Faults), zap.Any("reasons", out.FaultReasons), zap.Int("proven", len(kept)))
				bp.setProof(out.Proofs[0], todo)
				break
			}
			if len(todo) == 0 {
				break
			}
			// No proof came back (or one made over sectors the task did
			// not have): prove the batch again without the faults.
			r.log.Warn("prover found faulty sectors and returned no usable proof; skipping them and proving the batch again", zap.Uint64("miner", miner), zap.Uint64s("partitions", batch),
				zap.Uint64s("sectors", out.Faults), zap.Any("reasons", out.FaultReasons), zap.Int("proofs", len(out.Proofs)), zap.Int("retry", try+1))
			bp.retries++
			continue
		}
		if len(out.Proofs) != 1 {
			return nil, fmt.Errorf("partitions %v: the prover returned %d proofs and no fault; a message takes exactly one", batch, len(out.Proofs))
		}
		bp.setProof(out.Proofs[0], todo)
		break
	}
	for idx := range bp.skipped {
		slices.Sort(bp.skipped[idx])
	}
	return bp, nil
}
