package runner

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/dline"

	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
)

// batchDeclarations cuts fault or recovery declarations into messages the
// actor accepts: at most miner.DeclarationsMax entries (distinct
// partitions, AddressedPartitionsMax) and miner.AddressedSectorsMax
// sectors each. A partition with more sectors than fit is split across
// messages (a declaration for the same partition in two messages is
// fine: the actor merges them).
func batchDeclarations(decls []miner.FaultDeclaration, maxEntries int, maxSectors uint64) ([][]miner.FaultDeclaration, error) {
	var out [][]miner.FaultDeclaration
	var cur []miner.FaultDeclaration
	var sectors uint64
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur, sectors = nil, 0
	}
	for _, d := range decls {
		rest, err := d.Sectors.All(1 << 20)
		if err != nil {
			return nil, fmt.Errorf("declaration for partition %d: %w", d.Partition, err)
		}
		for len(rest) > 0 {
			if len(cur) == maxEntries || sectors == maxSectors {
				flush()
			}
			n := min(uint64(len(rest)), maxSectors-sectors)
			cur = append(cur, miner.FaultDeclaration{Deadline: d.Deadline, Partition: d.Partition, Sectors: bitfield.NewFromSet(rest[:n])})
			sectors += n
			rest = rest[n:]
		}
	}
	flush()
	return out, nil
}

// checkWindow checks the sectors the chain holds faulty (and not yet
// recovering) when the deadline two before theirs opens (Lotus declares
// for deadline d+2 when d opens), and declares the ones that can be read
// again recovered, so they are proven (and healed) in the window; without
// it a sector skipped once (say, before its location was imported) would
// stay faulty forever. Faults are NOT declared ahead, as Lotus stopped
// doing (its checkNextFaults is disabled): a sector that cannot be read at
// proving time is skipped in the proof, which costs the same fee as a
// declared fault, while declaring ahead risks marking a good sector faulty
// over a transient read error or metadata not yet replicated here.
// Declarations are batched within the actor's limits, followed to their
// receipts, and sent again until they land or the fault cutoff passes.
func (r *Runner) checkWindow(ctx context.Context, a fsm.Assignment, mi minerInfo, di dline.Info) {
	log := r.log.With(zap.String("deadline", fmt.Sprintf("t0%d/%d", a.Miner, a.Deadline)), zap.Int64("open", int64(di.Open)), zap.Int64("cutoff", int64(di.FaultCutoff)))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	maddr := fullnode.IDAddress(a.Miner)
	var recoveries []miner.FaultDeclaration
	var err error
	for try := 1; ; try++ {
		if recoveries == nil {
			recoveries, err = r.checkRecoveries(ctx, log, a, mi, di)
			if err == nil && len(recoveries) == 0 {
				log.Debug("recovery check: no faulty sector can be read again")
				return
			}
		}
		if err == nil {
			// A failed declaration is sent again whole: sectors already
			// recovering are ignored by the actor. A failed check is made
			// again.
			if err = r.declare(ctx, log, maddr, mi, di, recoveries); err == nil {
				return
			}
		} else {
			recoveries = nil
		}
		h, herr := r.head(ctx)
		if ctx.Err() != nil || (herr == nil && h >= di.FaultCutoff) {
			log.Error("recoveries did not land before the fault cutoff: the sectors stay faulty and are declared again next period",
				zap.Int("attempts", try), zap.Error(err))
			return
		}
		log.Warn("declaring recoveries failed; retrying until the cutoff", zap.Int("attempt", try), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(try)*r.cfg.Poll, 5*time.Second)):
		}
	}
}

// checkRecoveries reads a fresh random challenge of every sector of the
// deadline that is faulty on chain and not recovering, through the
// children, and returns the recovery declarations for those that read.
func (r *Runner) checkRecoveries(ctx context.Context, log *zap.Logger, a fsm.Assignment, mi minerInfo, di dline.Info) ([]miner.FaultDeclaration, error) {
	maddr := fullnode.IDAddress(a.Miner)
	parts, err := r.cfg.Chain.StateMinerPartitions(ctx, maddr, uint64(a.Deadline), nil)
	if err != nil {
		return nil, fmt.Errorf("recovery check: partitions: %w", err)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("recovery check: random seed: %w", err)
	}
	seed[31] &= 0x3f
	recoveries := []miner.FaultDeclaration{}
	for i, part := range parts {
		faulty, err := bitfield.IntersectBitField(part.LiveSectors, part.FaultySectors)
		if err == nil {
			faulty, err = bitfield.SubtractBitField(faulty, part.RecoveringSectors)
		}
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", i, err)
		}
		if n, err := faulty.Count(); err != nil || n == 0 {
			continue // nothing faulty: no child request
		}
		good, err := r.readable(ctx, log, a.Miner, mi, seed, faulty)
		if err != nil {
			return nil, fmt.Errorf("recovery check of partition %d: %w", i, err)
		}
		if len(good) > 0 {
			recoveries = append(recoveries, miner.FaultDeclaration{Deadline: di.Index, Partition: uint64(i), Sectors: bitfield.NewFromSet(good)})
		}
	}
	return recoveries, nil
}

// declare sends DeclareFaultsRecovered in batches and waits for every
// receipt. Each push has its own MsgUuid; sending a declaration twice is
// harmless (the actor ignores sectors already recovering), so a failed
// call is simply made again.
func (r *Runner) declare(ctx context.Context, log *zap.Logger, maddr address.Address, mi minerInfo, di dline.Info, decls []miner.FaultDeclaration) error {
	const method = "DeclareFaultsRecovered"
	send := func(ctx context.Context, b []miner.FaultDeclaration, spec *fullnode.MessageSendSpec) (cid.Cid, error) {
		rs := make([]miner.RecoveryDeclaration, len(b))
		for i, d := range b {
			rs[i] = miner.RecoveryDeclaration(d)
		}
		return r.cfg.Chain.DeclareFaultsRecovered(ctx, maddr, mi.sender, &miner.DeclareFaultsRecoveredParams{Recoveries: rs}, spec)
	}
	if h, err := r.head(ctx); err != nil {
		return err
	} else if h >= di.FaultCutoff {
		return fmt.Errorf("%s for deadline %d: the fault cutoff %d has passed (head %d)", method, di.Index, di.FaultCutoff, h)
	}
	batches, err := batchDeclarations(decls, miner.DeclarationsMax, miner.AddressedSectorsMax)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range batches {
		cid, err := send(ctx, b, r.spec(fullnode.NewMsgUUID()))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", method, err))
			continue
		}
		sectors := uint64(0)
		for _, d := range b {
			n, _ := d.Sectors.Count() // made here from a set: cannot fail
			sectors += n
		}
		log.Info("declaration sent", zap.String("method", method), zap.Int("partitions", len(b)), zap.Uint64("sectors", sectors), zap.Stringer("from", mi.sender), zap.Stringer("message", cid))
		ml, why, err := r.waitReceipt(ctx, method, cid)
		switch {
		case err != nil:
			errs = append(errs, err)
		case why != "":
			log.Error("declaration refused by the miner actor", zap.String("method", method), zap.Stringer("message", cid), zap.String("error", why))
			errs = append(errs, &refusedError{what: fmt.Sprintf("%s %s", method, cid), why: why})
		default:
			log.Info("declaration landed", zap.String("method", method), zap.Stringer("message", cid), zap.Int64("height", int64(ml.Height)))
		}
	}
	return errors.Join(errs...)
}
