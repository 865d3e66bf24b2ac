package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
)

// ComputedPartition is one partition of a ComputeResult.
type ComputedPartition struct {
	Index   uint64   `json:"index"`
	Sectors uint64   `json:"sectors"`
	Skipped []uint64 `json:"skipped,omitempty"`
	// Message numbers the batch (from 0) whose one proof covers this
	// partition; ProofBytes is the size of that proof.
	Message    int `json:"message"`
	ProofBytes int `json:"proof_bytes"`
	// Invalid is why the batch has no proof: its proofs failed
	// self-verification.
	Invalid string `json:"invalid,omitempty"`
}

// ComputeResult is what `vsm proving compute` prints.
type ComputeResult struct {
	Miner    uint64 `json:"miner"`
	Deadline uint8  `json:"deadline"`
	Head     int64  `json:"head"`
	Open     int64  `json:"open"`
	Close    int64  `json:"close"`
	// RandomnessEpoch is the epoch of the randomness used: the
	// deadline's challenge epoch, or the head when that is still ahead.
	RandomnessEpoch int64               `json:"randomness_epoch"`
	Partitions      []ComputedPartition `json:"partitions"`
	Submitted       bool                `json:"submitted"`
	Messages        int                 `json:"messages"`
	TookMS          int64               `json:"took_ms"`
	Note            string              `json:"note,omitempty"`
}

// Compute proves one deadline now, on demand, through this node's
// children: its current window if it has not closed, else the next one.
// Before the challenge epoch the head's randomness stands in (the proof
// checks the sectors and the children but cannot be submitted). With
// submit, the proofs are submitted; that needs the window open.
func (r *Runner) Compute(ctx context.Context, miner uint64, d uint8, submit bool) (ComputeResult, error) {
	start := time.Now()
	mi, err := r.minerInfo(ctx, miner, -1)
	if err != nil {
		return ComputeResult{}, err
	}
	if uint64(d) >= mi.policy.PeriodDeadlines {
		return ComputeResult{}, fmt.Errorf("deadline %d is not below %d", d, mi.policy.PeriodDeadlines)
	}
	head, err := r.head(ctx)
	if err != nil {
		return ComputeResult{}, err
	}
	di := Window(mi.periodStart, uint64(d), head, mi.policy)
	res := ComputeResult{Miner: miner, Deadline: d, Head: int64(head), Open: int64(di.Open), Close: int64(di.Close), RandomnessEpoch: int64(di.Challenge)}
	if submit && !di.IsOpen() {
		return res, fmt.Errorf("deadline %d of t0%d opens at epoch %d (head %d): --submit works only while its window is open", d, miner, di.Open, head)
	}
	rdi := di
	if head < di.Challenge {
		rdi.Challenge = head
		res.RandomnessEpoch = int64(head)
		res.Note = fmt.Sprintf("the challenge epoch %d is ahead; proved with the randomness of the head as a stand-in", di.Challenge)
	}
	maddr := fullnode.IDAddress(miner)
	parts, err := r.cfg.Chain.StateMinerPartitions(ctx, maddr, uint64(d), nil)
	if err != nil {
		return res, fmt.Errorf("partitions of t0%d deadline %d: %w", miner, d, err)
	}
	seed, err := r.cfg.Chain.WindowPoStRandomness(ctx, maddr, &rdi, nil)
	if err != nil {
		return res, err
	}
	which := make([]uint64, len(parts))
	for i := range which {
		which[i] = uint64(i)
	}
	if submit {
		// Partitions already proven in this window must stay out of the
		// proof, as in a deadline attempt.
		if proven, err := r.provenPartitions(ctx, maddr, d); err == nil {
			which = filter(which, func(p uint64) bool { return !proven[p] })
		}
	}
	batches := planBatches(which, partitionLimit(r.cfg.MaxPartitionsPerMessage, mi.partitionSectors))
	st := newProveState()
	st.useSeed(seed)
	if err := r.proveBatches(ctx, miner, uint64(d), mi, seed, parts, batches, st); err != nil {
		return res, fmt.Errorf("prove t0%d deadline %d: %w", miner, d, err)
	}
	for m, batch := range batches {
		bp := st.batches[batchKey(batch)]
		for _, p := range batch {
			toProve, err := sectorsToProve(parts[p])
			if err != nil {
				return res, fmt.Errorf("partition %d of t0%d deadline %d: %w", p, miner, d, err)
			}
			n, err := toProve.Count()
			if err != nil {
				return res, fmt.Errorf("partition %d of t0%d deadline %d: %w", p, miner, d, err)
			}
			res.Partitions = append(res.Partitions, ComputedPartition{Index: p, Sectors: n, Skipped: bp.skipped[p], Message: m, ProofBytes: len(bp.proof), Invalid: bp.invalid})
		}
	}
	if submit {
		proven, err := r.provenPartitions(ctx, maddr, d)
		if err != nil {
			return res, err
		}
		var ar attemptResult
		if err := r.submit(ctx, maddr, mi, di, batches, proven, st, &ar); err != nil {
			return res, err
		}
		res.Submitted, res.Messages = true, ar.messages
		r.record(fsm.DeadlineRecord{DeadlineKey: fsm.DeadlineKey{Miner: miner, Deadline: d}, PeriodStart: int64(di.PeriodStart), Outcome: fsm.OutcomeSubmitted,
			Node: r.cfg.NodeID, DurationMS: uint64(time.Since(start).Milliseconds()), Message: "proving compute --submit"}, r.log)
	}
	res.TookMS = time.Since(start).Milliseconds()
	return res, nil
}

func filter(xs []uint64, keep func(uint64) bool) []uint64 {
	var out []uint64
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}
