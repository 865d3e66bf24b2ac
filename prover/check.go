package prover

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// CheckRequest asks which sectors of a miner can be proven now.
type CheckRequest struct {
	MinerID   uint64
	ProofType string
	// Replicas with absolute local paths (the caller resolves storage
	// instances, as for proving).
	Replicas []Replica
	// BatchSize is the number of sectors per request; default 256, so a
	// large miner's check spreads over every child.
	BatchSize int
}

// SectorCheck is the outcome for one sector.
type SectorCheck struct {
	SectorID uint64 `json:"sector_id"`
	Good     bool   `json:"good"`
	// Reason says why a faulty sector is faulty, or why an unchecked one
	// could not be checked.
	Reason string `json:"reason,omitempty"`
	// Unchecked: no child could answer for the sector; it is neither known
	// good nor known faulty.
	Unchecked bool `json:"unchecked,omitempty"`
	// Child is the child that answered for the sector; Failures are the
	// children that failed its batch before (see Trace).
	Child    string         `json:"child,omitempty"`
	Failures []ChildFailure `json:"failures,omitempty"`
}

// CheckSectors reads fresh random challenges of every replica through the
// children (as `lotus-miner proving check` does) and returns one result per
// replica, in request order. A sector is faulty when the prover lists it in
// faults; the built-in engine says why, other provers are reported as
// "reported faulty by the prover". A batch a child fails (hangs past
// CheckTimeoutSecs, answers garbage, dies) is retried on another child;
// a batch no child could answer is reported Unchecked, sector by sector,
// with every child's failure. An error means the check as a whole stopped
// (ctx ended).
func (s *Supervisor) CheckSectors(ctx context.Context, req CheckRequest) ([]SectorCheck, error) {
	batch := req.BatchSize
	if batch <= 0 {
		batch = 256
	}
	var seed Bytes32
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("check sectors: random seed: %w", err)
	}
	seed[31] &= 0x3f
	out := make([]SectorCheck, len(req.Replicas))
	var wg sync.WaitGroup
	errs := make([]error, (len(req.Replicas)+batch-1)/batch)
	for b := 0; b*batch < len(req.Replicas); b++ {
		lo, hi := b*batch, min((b+1)*batch, len(req.Replicas))
		wg.Add(1)
		go func() {
			defer wg.Done()
			task := WindowPoStTask{MinerID: req.MinerID, ProofType: req.ProofType, Replicas: req.Replicas[lo:hi], Seed: seed, CheckOnly: true}
			res, tr, err := s.ProveTraced(ctx, task)
			if err != nil && ctx.Err() != nil {
				errs[b] = fmt.Errorf("sectors %d..%d: %w", req.Replicas[lo].SectorID, req.Replicas[hi-1].SectorID, err)
				return
			}
			if err != nil {
				for i, r := range req.Replicas[lo:hi] {
					out[lo+i] = SectorCheck{SectorID: r.SectorID, Unchecked: true, Reason: "not checked: " + err.Error(), Failures: tr.Failures}
				}
				return
			}
			faulty := make(map[uint64]bool, len(res.Faults))
			for _, f := range res.Faults {
				faulty[f] = true
			}
			for i, r := range req.Replicas[lo:hi] {
				sc := SectorCheck{SectorID: r.SectorID, Good: !faulty[r.SectorID], Child: tr.Child, Failures: tr.Failures}
				if !sc.Good {
					sc.Reason = res.FaultReasons[strconv.FormatUint(r.SectorID, 10)]
					if sc.Reason == "" {
						sc.Reason = "reported faulty by the prover"
					}
				}
				out[lo+i] = sc
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("check sectors of miner t0%d: %w", req.MinerID, err)
	}
	return out, nil
}
