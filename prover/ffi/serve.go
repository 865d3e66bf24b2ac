package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	ffi "github.com/filecoin-project/filecoin-ffi"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/proof"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// engineName is reported in outputs so the parent's logs say which engine
// made a proof.
const engineName = "filecoin-ffi"

// handler dispatches a task: verification (it has a "verify" key),
// WinningPoSt (a StackedDrgWinning proof type) or WindowPoSt.
func handler(log *zap.Logger, reads int) prover.Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		if prover.IsVerifyTask(raw) {
			task, err := prover.DecodeVerifyTask(raw)
			if err != nil {
				return nil, err
			}
			return verify(task)
		}
		var task prover.WindowPoStTask
		if err := json.Unmarshal(raw, &task); err != nil {
			return nil, fmt.Errorf("task is not a PoSt task: %w", err)
		}
		// The randomness must be a field element; some parents send it
		// unmasked. Lotus's ffiwrapper and the FVM mask it the same way.
		task.Seed[31] &= 0x3f
		pp, err := sectorfile.PoStProofByName(task.ProofType)
		if err != nil {
			return nil, err
		}
		if len(task.Replicas) == 0 {
			return nil, fmt.Errorf("%s task for miner t0%d has no replicas", task.ProofType, task.MinerID)
		}
		sectors, err := privateSectors(task.Replicas, pp)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if pp.Winning {
			out, err := proveWinning(task, sectors)
			if err == nil {
				log.Info("winning post proven", zap.Uint64("miner", task.MinerID), zap.Uint64("sector", task.Replicas[0].SectorID), zap.Duration("took", time.Since(start)))
			}
			return out, err
		}
		out, err := proveWindow(ctx, task, pp, sectors, reads)
		for _, f := range out.Faults {
			log.Warn("faulty sector", zap.Uint64("miner", task.MinerID), zap.Uint64("sector", f), zap.String("reason", out.FaultReasons[strconv.FormatUint(f, 10)]))
		}
		if err == nil && !task.CheckOnly {
			log.Info("window post proven", zap.Uint64("miner", task.MinerID), zap.Int("sectors", len(sectors)),
				zap.Int("faults", len(out.Faults)), zap.Duration("took", time.Since(start)))
		}
		return out, err
	}
}

// privateSectors converts a task's replicas to filecoin-ffi's form.
func privateSectors(replicas []prover.Replica, pp sectorfile.PoStProof) ([]ffi.PrivateSectorInfo, error) {
	sectors := make([]ffi.PrivateSectorInfo, 0, len(replicas))
	for i, r := range replicas {
		sealed, err := commcid.ReplicaCommitmentV1ToCID(r.CommR[:])
		if err != nil {
			return nil, fmt.Errorf("replica %d (sector %d): comm_r: %w", i, r.SectorID, err)
		}
		sectors = append(sectors, ffi.PrivateSectorInfo{
			SectorInfo: proof.SectorInfo{
				SealProof:    abi.RegisteredSealProof(pp.SealProof),
				SectorNumber: abi.SectorNumber(r.SectorID),
				SealedCID:    sealed,
			},
			CacheDirPath:     r.CacheDir,
			PoStProofType:    abi.RegisteredPoStProof(pp.ChainID),
			SealedSectorPath: r.SealedFile,
		})
	}
	return sectors, nil
}

// proveWindow proves the whole batch (the union of one message's
// partitions) as ONE proof, the way Lotus's and damocles' distributed
// provers do: first each sector's vanilla proof (its challenged leaves and
// Merkle paths, checked against comm_r_last), where a sector that cannot be
// read or whose files changed becomes a fault; then the SNARK over the good
// sectors' vanilla proofs in sector order, which filecoin-ffi cuts into the
// circuit's partitions and concatenates: what the miner actor verifies.
// Proving straight from the files instead (GenerateWindowPoSt) panics inside
// the library on a corrupted replica rather than reporting it.
func proveWindow(ctx context.Context, task prover.WindowPoStTask, pp sectorfile.PoStProof, sectors []ffi.PrivateSectorInfo, reads int) (prover.WindowPoStOutput, error) {
	start := time.Now()
	out, vanilla, err := vanillaProofs(ctx, task, pp, sectors, reads)
	if err != nil {
		return out, err
	}
	out.VanillaSeconds = time.Since(start).Seconds()
	if task.CheckOnly || len(vanilla) == 0 {
		// A check wants the reads only; with every sector faulty there is
		// nothing to prove and the parent skips them all.
		return out, nil
	}
	proofs, err := ffi.GenerateWindowPoStWithVanilla(abi.RegisteredPoStProof(pp.ChainID), abi.ActorID(task.MinerID), task.Seed[:], vanilla)
	if err != nil {
		return out, fmt.Errorf("WindowPoSt SNARK for miner t0%d over %d sectors: %w", task.MinerID, len(vanilla), err)
	}
	if len(proofs) != 1 {
		return out, fmt.Errorf("WindowPoSt SNARK for miner t0%d returned %d proofs, want 1", task.MinerID, len(proofs))
	}
	out.Proofs = append(out.Proofs, proofs[0].ProofBytes)
	return out, nil
}

// vanillaProofs reads every sector's challenges, reads at a time, and
// returns the good sectors' vanilla proofs in sector-number order (the
// order the SNARK and the verifier use) with the faults in out.
func vanillaProofs(ctx context.Context, task prover.WindowPoStTask, pp sectorfile.PoStProof, sectors []ffi.PrivateSectorInfo, reads int) (prover.WindowPoStOutput, [][]byte, error) {
	out := prover.WindowPoStOutput{Proofs: [][]byte{}, Faults: []uint64{}, FaultReasons: map[string]string{}, Engine: engineName}
	sorted := slices.Clone(sectors)
	slices.SortFunc(sorted, func(a, b ffi.PrivateSectorInfo) int { return cmp.Compare(a.SectorNumber, b.SectorNumber) })
	ids := make([]abi.SectorNumber, len(sorted))
	for i, s := range sorted {
		ids[i] = s.SectorNumber
	}
	ch, err := ffi.GeneratePoStFallbackSectorChallenges(abi.RegisteredPoStProof(pp.ChainID), abi.ActorID(task.MinerID), task.Seed[:], ids)
	if err != nil {
		return out, nil, fmt.Errorf("derive challenges for miner t0%d: %w", task.MinerID, err)
	}
	proofs := make([][]byte, len(sorted))
	errs := make([]error, len(sorted))
	sem := make(chan struct{}, max(reads, 1))
	var wg sync.WaitGroup
	for i, s := range sorted {
		if err := ctx.Err(); err != nil {
			wg.Wait()
			return out, nil, err
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			proofs[i], errs[i] = ffi.GenerateSingleVanillaProof(s, ch.Challenges[s.SectorNumber])
		}()
	}
	wg.Wait()
	good := make([][]byte, 0, len(sorted))
	for i, s := range sorted {
		if errs[i] != nil {
			out.Faults = append(out.Faults, uint64(s.SectorNumber))
			out.FaultReasons[strconv.FormatUint(uint64(s.SectorNumber), 10)] = fmt.Sprintf(
				"vanilla proof of sector %d failed: the sealed file %s or the cache %s is unreadable or does not match comm_r (filecoin-ffi: %v)",
				s.SectorNumber, s.SealedSectorPath, s.CacheDirPath, errs[i])
			continue
		}
		good = append(good, proofs[i])
	}
	out.ChallengedReads = int64(len(sorted)) * int64(pp.Challenges())
	return out, good, nil
}

// proveWinning proves the challenged sector(s) of a mining round. A sector
// that cannot be proven is an error: a block cannot skip it.
func proveWinning(task prover.WindowPoStTask, sectors []ffi.PrivateSectorInfo) (prover.WinningPoStOutput, error) {
	if len(sectors) != sectorfile.WinningPoStSectorCount {
		return prover.WinningPoStOutput{}, fmt.Errorf("winning post of miner t0%d: %d replicas, want exactly the %d challenged sector(s)",
			task.MinerID, len(sectors), sectorfile.WinningPoStSectorCount)
	}
	proofs, err := ffi.GenerateWinningPoSt(abi.ActorID(task.MinerID), ffi.NewSortedPrivateSectorInfo(sectors...), task.Seed[:])
	if err != nil {
		return prover.WinningPoStOutput{}, fmt.Errorf("GenerateWinningPoSt for miner t0%d sector %d: %w", task.MinerID, task.Replicas[0].SectorID, err)
	}
	if len(proofs) != 1 {
		return prover.WinningPoStOutput{}, fmt.Errorf("GenerateWinningPoSt for miner t0%d returned %d proofs, want 1", task.MinerID, len(proofs))
	}
	return prover.WinningPoStOutput{Proofs: [][]byte{proofs[0].ProofBytes}, Engine: engineName}, nil
}

// verify checks a proof with filecoin-ffi's verifier, the one a chain node
// runs (there inside the FVM's verify syscalls).
func verify(task prover.VerifyPoStTask) (prover.VerifyPoStOutput, error) {
	task.Randomness[31] &= 0x3f // as the FVM does before verifying
	pp, err := sectorfile.PoStProofByName(task.ProofType)
	if err != nil {
		return prover.VerifyPoStOutput{}, err
	}
	infos := make([]proof.SectorInfo, len(task.Sectors))
	for i, s := range task.Sectors {
		sealed, err := commcid.ReplicaCommitmentV1ToCID(s.CommR[:])
		if err != nil {
			return prover.VerifyPoStOutput{}, fmt.Errorf("sector %d: comm_r: %w", s.SectorID, err)
		}
		infos[i] = proof.SectorInfo{SealProof: abi.RegisteredSealProof(pp.SealProof), SectorNumber: abi.SectorNumber(s.SectorID), SealedCID: sealed}
	}
	proofs := []proof.PoStProof{{PoStProof: abi.RegisteredPoStProof(pp.ChainID), ProofBytes: task.Proof}}
	var ok bool
	switch task.Verify {
	case prover.VerifyWinningPoSt:
		if !pp.Winning {
			return prover.VerifyPoStOutput{}, fmt.Errorf("verify winning_post with %s, which is not a WinningPoSt type", task.ProofType)
		}
		ok, err = ffi.VerifyWinningPoSt(proof.WinningPoStVerifyInfo{
			Randomness: task.Randomness[:], Proofs: proofs, ChallengedSectors: infos, Prover: abi.ActorID(task.MinerID),
		})
	default:
		if pp.Winning {
			return prover.VerifyPoStOutput{}, fmt.Errorf("verify window_post with %s, which is a WinningPoSt type", task.ProofType)
		}
		ok, err = ffi.VerifyWindowPoSt(proof.WindowPoStVerifyInfo{
			Randomness: task.Randomness[:], Proofs: proofs, ChallengedSectors: infos, Prover: abi.ActorID(task.MinerID),
		})
	}
	if err != nil {
		// The library refuses malformed input (a proof of the wrong
		// length, say) with an error: for the chain that is an invalid proof.
		return prover.VerifyPoStOutput{Valid: false, Reason: err.Error()}, nil
	}
	if !ok {
		return prover.VerifyPoStOutput{Valid: false, Reason: "the SNARK does not verify against these sectors and randomness"}, nil
	}
	return prover.VerifyPoStOutput{Valid: true}, nil
}
