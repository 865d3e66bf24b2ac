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

// checkWindow checks a deadline's sectors when the deadline two before it
// opens (Lotus declares for deadline d+2 when d opens), and declares live
// sectors that cannot be read faulty, so the chain does not count their
// whole partition as missed, and sectors the chain holds faulty that can
// be read again recovered, so they are proven (and healed) in the window.
// Without the recovery half a sector declared faulty once (say, before its
// location was imported) would stay faulty forever. Declarations are
// batched within the actor's limits, followed to their receipts, and sent
// again until they land or the fault cutoff passes.
func (r *Runner) checkWindow(ctx context.Context, a fsm.Assignment, mi minerInfo, di dline.Info) {
	log := r.log.With(zap.String("deadline", fmt.Sprintf("t0%d/%d", a.Miner, a.Deadline)), zap.Int64("open", int64(di.Open)), zap.Int64("cutoff", int64(di.FaultCutoff)))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	maddr := fullnode.IDAddress(a.Miner)
	var faults, recoveries []miner.FaultDeclaration
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
					faults = []miner.FaultDeclaration{}
				}
			}
			if len(recoveries) > 0 {
				if rerr = r.declare(ctx, log, maddr, mi, di, recoveries, true); rerr == nil {
					recoveries = []miner.FaultDeclaration{}
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
func (r *Runner) checkSectors(ctx context.Context, log *zap.Logger, a fsm.Assignment, mi minerInfo, di dline.Info) (faults, recoveries []miner.FaultDeclaration, err error) {
	maddr := fullnode.IDAddress(a.Miner)
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
		healthy, err := bitfield.SubtractBitField(part.LiveSectors, part.FaultySectors)
		if err != nil {
			return nil, nil, fmt.Errorf("partition %d: %w", i, err)
		}
		faulty, err := bitfield.IntersectBitField(part.LiveSectors, part.FaultySectors)
		if err == nil {
			faulty, err = bitfield.SubtractBitField(faulty, part.RecoveringSectors)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("partition %d: %w", i, err)
		}
		bad, _, err := r.readable(ctx, log, a.Miner, mi, seed, healthy)
		if err != nil {
			return nil, nil, fmt.Errorf("fault check of partition %d: %w", i, err)
		}
		_, good, err := r.readable(ctx, log, a.Miner, mi, seed, faulty)
		if err != nil {
			return nil, nil, fmt.Errorf("recovery check of partition %d: %w", i, err)
		}
		if len(bad) > 0 {
			faults = append(faults, miner.FaultDeclaration{Deadline: di.Index, Partition: uint64(i), Sectors: bitfield.NewFromSet(bad)})
		}
		if len(good) > 0 {
			recoveries = append(recoveries, miner.FaultDeclaration{Deadline: di.Index, Partition: uint64(i), Sectors: bitfield.NewFromSet(good)})
		}
	}
	return faults, recoveries, nil
}

// declare sends DeclareFaults (or DeclareFaultsRecovered) in batches and
// waits for every receipt. Each push has its own MsgUuid; sending a
// declaration twice is harmless (the actor ignores sectors already faulty
// or already recovering), so a failed call is simply made again.
func (r *Runner) declare(ctx context.Context, log *zap.Logger, maddr address.Address, mi minerInfo, di dline.Info, decls []miner.FaultDeclaration, recovered bool) error {
	method := "DeclareFaults"
	if recovered {
		method = "DeclareFaultsRecovered"
	}
	// The two methods' params have the same shape under different names.
	send := func(ctx context.Context, b []miner.FaultDeclaration, spec *fullnode.MessageSendSpec) (cid.Cid, error) {
		if !recovered {
			return r.cfg.Chain.DeclareFaults(ctx, maddr, mi.sender, &miner.DeclareFaultsParams{Faults: b}, spec)
		}
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
