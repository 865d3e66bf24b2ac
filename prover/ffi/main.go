// Command vsm-ffi-prover is vsm's real WindowPoSt engine: an ext-prover
// child that speaks the same protocol as `vsm wdpost` (docs/ext-prover.md)
// and proves with filecoin-ffi (rust-fil-proofs, GPU SNARKs). Its proofs are
// valid on Filecoin mainnet. Configure it in ext-prover.cfg:
//
//	[[WdPost]]
//	Bin = "/usr/local/bin/vsm-ffi-prover"
//	Args = ["wdpost"]
//	[WdPost.Envs]
//	CUDA_VISIBLE_DEVICES = "0"
//	TMPDIR = "/var/tmp/vsm-gpu0"
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	ffi "github.com/filecoin-project/filecoin-ffi"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/proof"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/logging"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

func main() {
	app := &cli.App{
		Name:  "vsm-ffi-prover",
		Usage: "WindowPoSt ext-prover child backed by filecoin-ffi",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)"},
		},
		Commands: []*cli.Command{{
			Name:  "wdpost",
			Usage: "serve WindowPoSt requests on stdin/stdout",
			Action: func(c *cli.Context) error {
				log, err := logging.New(c.String("log-level"))
				if err != nil {
					return err
				}
				defer func() { _ = log.Sync() }()
				ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM)
				defer stop()
				return prover.Serve(ctx, os.Stdin, os.Stdout, handler(log), prover.ServeOptions{Logger: log})
			},
		}},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "vsm-ffi-prover:", err)
		os.Exit(1)
	}
}

// maxFaultRetries bounds how often a partition is re-proven without the
// sectors the proofs library found faulty (Lotus does the same).
const maxFaultRetries = 3

func handler(log *zap.Logger) prover.Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var task prover.WindowPoStTask
		if err := json.Unmarshal(raw, &task); err != nil {
			return nil, fmt.Errorf("task is not a WindowPoSt task: %w", err)
		}
		pp, err := sectorfile.PoStProofByName(task.ProofType)
		if err != nil {
			return nil, err
		}
		if pp.Winning {
			// TODO: ffi.GenerateWinningPoSt; until then say so plainly.
			return nil, fmt.Errorf("%s: WinningPoSt is not implemented by this prover yet (only WindowPoSt)", task.ProofType)
		}
		sectors := make([]ffi.PrivateSectorInfo, 0, len(task.Replicas))
		for i, r := range task.Replicas {
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
		out := prover.WindowPoStOutput{Proofs: [][]byte{}, Faults: []uint64{}, FaultReasons: map[string]string{}, Engine: "filecoin-ffi"}
		if task.CheckOnly {
			return checkVanilla(task, pp, sectors, out)
		}
		for attempt := 0; len(sectors) > 0; attempt++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			proofs, faulty, err := ffi.GenerateWindowPoSt(abi.ActorID(task.MinerID), ffi.NewSortedPrivateSectorInfo(sectors...), task.Seed[:])
			if err == nil {
				for _, p := range proofs {
					out.Proofs = append(out.Proofs, p.ProofBytes)
				}
				return out, nil
			}
			if len(faulty) == 0 || attempt >= maxFaultRetries {
				return nil, fmt.Errorf("GenerateWindowPoSt for miner t0%d: %w", task.MinerID, err)
			}
			bad := map[abi.SectorNumber]bool{}
			for _, f := range faulty {
				bad[f] = true
				out.Faults = append(out.Faults, uint64(f))
				out.FaultReasons[strconv.FormatUint(uint64(f), 10)] = err.Error()
				log.Warn("faulty sector", zap.Uint64("miner", task.MinerID), zap.Uint64("sector", uint64(f)), zap.Error(err))
			}
			kept := sectors[:0]
			for _, s := range sectors {
				if !bad[s.SectorNumber] {
					kept = append(kept, s)
				}
			}
			sectors = kept
		}
		return out, nil
	}
}

// checkVanilla reads each sector's challenged leaves (the vanilla proof)
// without a SNARK, as `lotus-miner proving check` does.
func checkVanilla(task prover.WindowPoStTask, pp sectorfile.PoStProof, sectors []ffi.PrivateSectorInfo, out prover.WindowPoStOutput) (any, error) {
	ids := make([]abi.SectorNumber, len(sectors))
	for i, s := range sectors {
		ids[i] = s.SectorNumber
	}
	ch, err := ffi.GeneratePoStFallbackSectorChallenges(abi.RegisteredPoStProof(pp.ChainID), abi.ActorID(task.MinerID), task.Seed[:], ids)
	if err != nil {
		return nil, fmt.Errorf("derive challenges: %w", err)
	}
	for _, s := range sectors {
		if _, err := ffi.GenerateSingleVanillaProof(s, ch.Challenges[s.SectorNumber]); err != nil {
			out.Faults = append(out.Faults, uint64(s.SectorNumber))
			out.FaultReasons[strconv.FormatUint(uint64(s.SectorNumber), 10)] = err.Error()
		}
	}
	return out, nil
}
