package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
	"github.com/vsm-project/vsm/rpc"
)

// SectorCheckResult is VSM.ProvingCheck's reply type (rpc/methods.go).
type SectorCheckResult = rpc.SectorCheckResult

// registerProving adds the proving methods (VSM.ProvingCheck, ...) that
// need this node's children and local storage paths.
func registerProving(mux *rpc.Mux, st replica, sup *prover.Supervisor, storagePaths map[string]string) {
	p := &proving{f: st.FSM(), ready: st.ReadReady, sup: sup, local: storagePaths}
	mux.Register(rpc.MethodProvingCheck, rpc.PermRead, p.check)
}

// replica is the local store: the FSM and whether it has replayed its log.
type replica interface {
	FSM() *fsm.FSM
	ReadReady() error
}

type proving struct {
	f     *fsm.FSM
	ready func() error
	sup   *prover.Supervisor
	local map[string]string
}

// check is VSM.ProvingCheck: params [miner, sectors?]. It reads fresh
// random challenges of each sector through this node's children, as
// `lotus-miner proving check` does, and returns one result per sector in
// sector-number order.
func (p *proving) check(ctx context.Context, params []json.RawMessage) (any, error) {
	var miner uint64
	var sectors []uint64
	if err := rpc.Params(params, 1, &miner, &sectors); err != nil {
		return nil, err
	}
	if err := p.ready(); err != nil {
		return nil, rpc.Errorf(rpc.CodeUnavailable, "%v", err)
	}
	if p.sup == nil {
		return nil, rpc.Errorf(rpc.CodeUnavailable, "this node runs no prover children, so it cannot check sectors: start it with 'vsm daemon run --ext-prover' (children come from ext-prover.cfg in its config directory)")
	}
	plan, err := planCheck(p.f, p.local, miner, sectors)
	if err != nil {
		return nil, err
	}
	out := plan.Results
	if len(plan.Replicas) == 0 {
		return out, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, checkTimeout)
		defer cancel()
	}
	checked, err := p.sup.CheckSectors(ctx, prover.CheckRequest{MinerID: miner, ProofType: plan.Proof.Name, Replicas: plan.Replicas})
	if err != nil {
		if ctx.Err() != nil {
			return nil, rpc.Errorf(rpc.CodeUnavailable, "proving check of t0%d stopped: %v; retry", miner, err)
		}
		return nil, fmt.Errorf("proving check of t0%d (%d sectors): %w", miner, len(plan.Replicas), err)
	}
	for i, c := range checked {
		r := SectorCheckResult{Sector: c.SectorID, Good: c.Good, Reason: c.Reason, Unchecked: c.Unchecked, Child: c.Child}
		for _, f := range c.Failures {
			r.Failures = append(r.Failures, rpc.ChildFailure{Child: f.Child, PID: f.PID, Kind: string(f.Kind), Detail: f.Detail})
		}
		if !r.Good && !r.Unchecked && plan.Replicas[i].CommR == (prover.Bytes32{}) {
			// The files are checked against CommR: without one stored, the
			// child's "wrong files" is about the missing commitment.
			r.Reason = fmt.Sprintf("no CommR is stored for this sector, so its files cannot be checked against it: put it again with --commr (or with a chain configured, which gives CommR and the proof type), or import it (the child said: %s)", c.Reason)
		}
		out[plan.Index[i]] = r
	}
	return out, nil
}

// checkPlan is what a proving check sends to the children: the replicas
// whose files could be located, and the results already known for the
// sectors that could not.
type checkPlan struct {
	Proof sectorfile.PoStProof
	// Results has one entry per sector, in sector-number order; entries
	// for Replicas are filled in after the check.
	Results []SectorCheckResult
	// Replicas are the locatable sectors; Index[i] is Replicas[i]'s
	// position in Results.
	Replicas []prover.Replica
	Index    []int
}

// planCheck resolves the sectors of a miner (all the store knows, or the
// listed numbers) to absolute local paths: each storage instance's path is
// this node's StoragePaths override, else the instance's default path, and
// the files inside it follow the Lotus layout (update/ and update-cache/
// for upgraded sectors). A sector without a location, on an unknown
// storage instance, or of another sector size than the miner's is a faulty
// result with the reason, not an error; an unknown miner is an error.
func planCheck(f *fsm.FSM, local map[string]string, miner uint64, sectors []uint64) (checkPlan, error) {
	m, ok := f.Miner(miner)
	if !ok {
		return checkPlan{}, rpc.Errorf(rpc.CodeNotFound, "miner t0%d is not known; add it with 'vsm miner add'", miner)
	}
	proof, err := sectorfile.PoStProofFromChain(int64(m.PoStProof))
	if err != nil {
		return checkPlan{}, rpc.Errorf(rpc.CodeRejected, "miner t0%d: %v", miner, err)
	}
	var locs []fsm.SectorLocation
	var missing []uint64
	if sectors == nil {
		locs = f.Locations(miner, 0, 0)
	} else {
		nums := slices.Clone(sectors)
		slices.Sort(nums)
		for _, n := range slices.Compact(nums) {
			if l, ok := f.Location(fsm.SectorID{Miner: miner, Number: n}); ok {
				locs = append(locs, l)
			} else {
				missing = append(missing, n)
			}
		}
	}
	plan := checkPlan{Proof: proof, Results: make([]SectorCheckResult, 0, len(locs)+len(missing))}
	loc := prover.Locator{Store: f, Local: local}
	for len(locs) > 0 || len(missing) > 0 {
		// Merge the located and missing sectors in number order.
		if len(missing) > 0 && (len(locs) == 0 || missing[0] < locs[0].Number) {
			plan.Results = append(plan.Results, SectorCheckResult{Sector: missing[0], Reason: fmt.Sprintf("no location in the store for %s; add it with 'vsm sector location put' or 'import'", sectorfile.SectorName(miner, missing[0]))})
			missing = missing[1:]
			continue
		}
		l := locs[0]
		locs = locs[1:]
		r, why := loc.Replica(l, proof)
		if why != "" {
			plan.Results = append(plan.Results, SectorCheckResult{Sector: l.Number, Reason: why})
			continue
		}
		plan.Index = append(plan.Index, len(plan.Results))
		plan.Results = append(plan.Results, SectorCheckResult{Sector: l.Number})
		plan.Replicas = append(plan.Replicas, r)
	}
	return plan, nil
}

// checkTimeout bounds a whole proving check when the caller set no deadline.
const checkTimeout = 30 * time.Minute
