package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ffi "github.com/filecoin-project/filecoin-ffi"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

func sectorCommand() *cli.Command {
	return &cli.Command{
		Name:  "sector",
		Usage: "real sectors sealed with filecoin-ffi",
		Subcommands: []*cli.Command{{
			Name:  "create",
			Usage: "seal real 2 KiB or 8 MiB sectors (PreCommit phases 1 and 2 on the CPU) in the Lotus layout",
			Description: "Writes DIR/sealed/s-t0M-N and DIR/cache/s-t0M-N/ (p_aux, t_aux and the tree-r-last\n" +
				"files WindowPoSt reads; the layers and other trees are cleared) for sectors of random data,\n" +
				"and prints one line per sector that 'vsm sector location import' accepts as it is.\n" +
				"The sectors are real; the ticket is random, not drawn from a chain.",
			Flags: []cli.Flag{
				&cli.Uint64Flag{Name: "miner", Required: true, Usage: "miner actor id (1000 for t01000)"},
				&cli.Uint64Flag{Name: "number", Required: true, Usage: "sector number (the first one with --count)"},
				&cli.IntFlag{Name: "count", Value: 1, Usage: "number of consecutive sectors to seal"},
				&cli.StringFlag{Name: "size", Value: "2KiB", Usage: "sector size: 2KiB or 8MiB"},
				&cli.StringFlag{Name: "dir", Required: true, Usage: "storage path (sealed/ and cache/ are created in it)"},
				&cli.StringFlag{Name: "storage", Value: "store-1", Usage: "storage instance name written in the import lines"},
				&cli.BoolFlag{Name: "json", Usage: "print one JSON object per sector with paths, comm_d and timings instead of import lines"},
			},
			Action: sealAction,
		}},
	}
}

// importLine is a line of `vsm sector location import` (docs/import.md).
type importLine struct {
	Miner  uint64 `json:"miner"`
	Number uint64 `json:"number"`
	Sealed string `json:"sealed"`
	Cache  string `json:"cache"`
	Proof  int64  `json:"proof"`
	CommR  string `json:"commr"`
}

// sealedJSON is the --json output.
type sealedJSON struct {
	Miner      uint64  `json:"miner"`
	Number     uint64  `json:"number"`
	Size       string  `json:"size"`
	SealProof  int64   `json:"seal_proof"`
	PoStProof  string  `json:"post_proof"`
	CommR      string  `json:"comm_r"`
	SealedCID  string  `json:"sealed_cid"`
	CommD      string  `json:"comm_d"`
	SealedFile string  `json:"sealed_file"`
	CacheDir   string  `json:"cache_dir"`
	Seconds    float64 `json:"seconds"`
}

func sealAction(c *cli.Context) error {
	size, err := sectorfile.ParseSize(c.String("size"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if size != 2<<10 && size != 8<<20 {
		return cli.Exit(fmt.Sprintf("--size %s: this tool seals 2KiB and 8MiB sectors (larger ones take hours on a CPU)", c.String("size")), 2)
	}
	if c.Int("count") < 1 {
		return cli.Exit("--count must be at least 1", 2)
	}
	pp, err := sectorfile.PoStProofForSize(size)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(c.String("dir"))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for i := range c.Int("count") {
		num := c.Uint64("number") + uint64(i)
		start := time.Now()
		s, err := sealOne(dir, c.Uint64("miner"), num, size, abi.RegisteredSealProof(pp.SealProof))
		if err != nil {
			return fmt.Errorf("seal sector %d of t0%d: %w", num, c.Uint64("miner"), err)
		}
		if c.Bool("json") {
			err = enc.Encode(sealedJSON{
				Miner: c.Uint64("miner"), Number: num, Size: sectorfile.FormatSize(size), SealProof: pp.SealProof, PoStProof: pp.Name,
				CommR: hex.EncodeToString(s.commR), SealedCID: s.sealedCID, CommD: s.unsealedCID,
				SealedFile: s.paths.Sealed, CacheDir: s.paths.Cache, Seconds: time.Since(start).Seconds(),
			})
		} else {
			err = enc.Encode(importLine{Miner: c.Uint64("miner"), Number: num, Sealed: c.String("storage"), Cache: c.String("storage"),
				Proof: pp.SealProof, CommR: hex.EncodeToString(s.commR)})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type sealed struct {
	paths       sectorfile.Paths
	commR       []byte
	sealedCID   string
	unsealedCID string
}

// sealOne seals one sector of random data: the piece is written into a
// staged (unsealed) file, PreCommit phase 1 computes the SDR layers, phase 2
// the column and replica trees and comm_r. Then the cache keeps only what
// PoSt reads, and the staged file goes, as after Lotus's FinalizeSector.
func sealOne(dir string, miner, num, size uint64, sp abi.RegisteredSealProof) (sealed, error) {
	paths := sectorfile.LayoutPaths(dir, miner, num, false)
	for _, d := range []string{filepath.Dir(paths.Sealed), paths.Cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return sealed{}, err
		}
	}
	if _, err := os.Stat(paths.Sealed); err == nil {
		return sealed{}, fmt.Errorf("%s exists: sealing would overwrite a sector", paths.Sealed)
	}
	tmp, err := os.MkdirTemp(dir, ".seal-")
	if err != nil {
		return sealed{}, err
	}
	defer os.RemoveAll(tmp)

	unpadded := abi.PaddedPieceSize(size).Unpadded()
	piece, err := randomFile(filepath.Join(tmp, "piece"), int64(unpadded))
	if err != nil {
		return sealed{}, err
	}
	defer piece.Close()
	staged, err := os.Create(filepath.Join(tmp, "staged"))
	if err != nil {
		return sealed{}, err
	}
	defer staged.Close()
	_, pieceCID, err := ffi.WriteWithoutAlignment(sp, piece, unpadded, staged)
	if err != nil {
		return sealed{}, fmt.Errorf("write piece: %w", err)
	}
	// SealPreCommitPhase1 opens the sealed path itself; it must exist.
	if err := os.WriteFile(paths.Sealed, nil, 0o644); err != nil {
		return sealed{}, err
	}
	var ticket abi.SealRandomness = make([]byte, 32)
	if _, err := rand.Read(ticket); err != nil {
		return sealed{}, err
	}
	ticket[31] &= 0x3f
	p1, err := ffi.SealPreCommitPhase1(sp, paths.Cache, staged.Name(), paths.Sealed, abi.SectorNumber(num), abi.ActorID(miner), ticket,
		[]abi.PieceInfo{{Size: abi.PaddedPieceSize(size), PieceCID: pieceCID}})
	if err != nil {
		os.Remove(paths.Sealed)
		return sealed{}, fmt.Errorf("PreCommit phase 1: %w", err)
	}
	sealedCID, unsealedCID, err := ffi.SealPreCommitPhase2(p1, paths.Cache, paths.Sealed)
	if err != nil {
		os.Remove(paths.Sealed)
		return sealed{}, fmt.Errorf("PreCommit phase 2: %w", err)
	}
	if err := ffi.ClearCache(paths.Cache); err != nil {
		return sealed{}, fmt.Errorf("clear cache %s: %w", paths.Cache, err)
	}
	commR, err := commcid.CIDToReplicaCommitmentV1(sealedCID)
	if err != nil {
		return sealed{}, err
	}
	return sealed{paths: paths, commR: commR, sealedCID: sealedCID.String(), unsealedCID: unsealedCID.String()}, nil
}

func randomFile(path string, n int64) (*os.File, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		return nil, err
	}
	return os.Open(path)
}
