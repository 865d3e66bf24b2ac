package runner

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/fullnode/bitfield"
)

// batchDeclarations cuts fault or recovery declarations into messages the
// actor accepts: at most fullnode.DeclarationsMax entries (distinct
// partitions, AddressedPartitionsMax) and fullnode.AddressedSectorsMax
// sectors each. A partition with more sectors than fit is split across
// messages (a declaration for the same partition in two messages is
// fine: the actor merges them).
func batchDeclarations(decls []fullnode.FaultDeclaration, maxEntries int, maxSectors uint64) ([][]fullnode.FaultDeclaration, error) {
	var out [][]fullnode.FaultDeclaration
	var cur []fullnode.FaultDeclaration
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
			bf, err := bitfield.FromSet(rest[:n])
			if err != nil {
				return nil, err
			}
			cur = append(cur, fullnode.FaultDeclaration{Deadline: d.Deadline, Partition: d.Partition, Sectors: bf})
			sectors += n
			rest = rest[n:]
		}
	}
	flush()
	return out, nil
}

// checkWindow checks a deadline's sectors when the deadline two before it
// opens (Lotus declares for deadline d+2 when d opens), and declares live
// sectors that cannot be read faulty, so the chain does not count their
// whole partition as missed, and sectors the chain holds faulty that can
// be read again recovered, so they are proven (and healed) in the window.
// Without the recovery half a sector declared faulty once (say, before its
// location was imported) would stay faulty forever. Declarations are
// batched within the actor's limits, followed to their receipts, and sent
// again until they land or the fault cutoff passes.
func (r *Runner) checkWindow(ctx context.Context, a fsm.Assignment, mi minerInfo, di fullnode.DeadlineInfo) {
	log := r.log.With(zap.String("deadline", fmt.Sprintf("t0%d/%d", a.Miner, a.Deadline)), zap.Int64("open", int64(di.Open)), zap.Int64("cutoff", int64(di.FaultCutoff)))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	maddr := fullnode.NewIDAddress(a.Miner)
	var faults, recoveries []fullnode.FaultDeclaration
	var err error
	for try := 1; ; try++ {
		if faults == nil && recoveries == nil {
			faults, recoveries, err = r.checkSectors(ctx, log, a, mi, di)
			if err == nil && len(faults) == 0 && len(recoveries) == 0 {
				log.Debug("fault check: every live sector readable, no faulty sector recovered")
				return
			}
		}
		if err == nil {
			// Each kind is sent until it lands; what landed is not sent again.
			var ferr, rerr error
			if len(faults) > 0 {
				if ferr = r.declare(ctx, log, maddr, mi, di, faults, false); ferr == nil {
					faults = []fullnode.FaultDeclaration{}
				}
			}
			if len(recoveries) > 0 {
				if rerr = r.declare(ctx, log, maddr, mi, di, recoveries, true); rerr == nil {
					recoveries = []fullnode.FaultDeclaration{}
				}
			}
			if err = errors.Join(ferr, rerr); err == nil {
				return
			}
		}
		h, herr := r.head(ctx)
		if ctx.Err() != nil || (herr == nil && h >= di.FaultCutoff) {
			log.Error("declarations did not land before the fault cutoff: faulty sectors will be skipped in the proof and recoveries wait for the next period",
				zap.Int("attempts", try), zap.Error(err))
			return
		}
		log.Warn("declaring faults and recoveries failed; retrying until the cutoff", zap.Int("attempt", try), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(try)*r.cfg.Poll, 5*time.Second)):
		}
	}
}

// checkSectors reads a fresh random challenge of every sector of the
// deadline through the children and returns the fault and recovery
// declarations to make.
func (r *Runner) checkSectors(ctx context.Context, log *zap.Logger, a fsm.Assignment, mi minerInfo, di fullnode.DeadlineInfo) (faults, recoveries []fullnode.FaultDeclaration, err error) {
	maddr := fullnode.NewIDAddress(a.Miner)
	parts, err := r.cfg.Chain.StateMinerPartitions(ctx, maddr, uint64(a.Deadline), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fault check: partitions: %w", err)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, nil, fmt.Errorf("fault check: random seed: %w", err)
	}
	seed[31] &= 0x3f
	for i, part := range parts {
		healthy := bitfield.Subtract(part.LiveSectors, part.FaultySectors)
		faulty := bitfield.Subtract(bitfield.Intersect(part.LiveSectors, part.FaultySectors), part.RecoveringSectors)
		bad, _, err := r.readable(ctx, log, a.Miner, mi, seed, healthy)
		if err != nil {
			return nil, nil, fmt.Errorf("fault check of partition %d: %w", i, err)
		}
		_, good, err := r.readable(ctx, log, a.Miner, mi, seed, faulty)
		if err != nil {
			return nil, nil, fmt.Errorf("recovery check of partition %d: %w", i, err)
		}
		if len(bad) > 0 {
			bf, err := bitfield.FromSet(bad)
			if err != nil {
				return nil, nil, err
			}
			faults = append(faults, fullnode.FaultDeclaration{Deadline: di.Index, Partition: uint64(i), Sectors: bf})
		}
		if len(good) > 0 {
			bf, err := bitfield.FromSet(good)
			if err != nil {
				return nil, nil, err
			}
			recoveries = append(recoveries, fullnode.FaultDeclaration{Deadline: di.Index, Partition: uint64(i), Sectors: bf})
		}
	}
	return faults, recoveries, nil
}

// declare sends DeclareFaults (or DeclareFaultsRecovered) in batches and
// waits for every receipt. Each push has its own MsgUuid; sending a
// declaration twice is harmless (the actor ignores sectors already faulty
// or already recovering), so a failed call is simply made again.
func (r *Runner) declare(ctx context.Context, log *zap.Logger, maddr fullnode.Address, mi minerInfo, di fullnode.DeadlineInfo, decls []fullnode.FaultDeclaration, recovered bool) error {
	method, send := "DeclareFaults", r.cfg.Chain.DeclareFaults
	if recovered {
		method, send = "DeclareFaultsRecovered", r.cfg.Chain.DeclareFaultsRecovered
	}
	if h, err := r.head(ctx); err != nil {
		return err
	} else if h >= di.FaultCutoff {
		return fmt.Errorf("%s for deadline %d: the fault cutoff %d has passed (head %d)", method, di.Index, di.FaultCutoff, h)
	}
	batches, err := batchDeclarations(decls, fullnode.DeclarationsMax, fullnode.AddressedSectorsMax)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range batches {
		cid, err := send(ctx, maddr, mi.sender, &fullnode.DeclareFaultsParams{Faults: b}, r.spec(fullnode.NewMsgUUID()))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", method, err))
			continue
		}
		sectors := uint64(0)
		for _, d := range b {
			sectors += d.Sectors.Count()
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
