package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

func utilCommand() *cli.Command {
	return &cli.Command{
		Name:  "util",
		Usage: "tools that work on local files without a running node",
		Subcommands: []*cli.Command{{
			Name:  "sector",
			Usage: "sector files",
			Subcommands: []*cli.Command{{
				Name:  "create",
				Usage: "write real sectors in the Lotus layout for the built-in engine (not valid on mainnet)",
				Description: "Writes DIR/sealed/s-t0M-N and DIR/cache/s-t0M-N/{p_aux,t_aux,sc-02-data-tree-r-last.dat}\n" +
					"(update/ and update-cache/ with --upgraded) and prints each sector's comm_r.",
				Flags: []cli.Flag{
					&cli.Uint64Flag{Name: "miner", Required: true, Usage: "miner actor id (1000 for t01000)"},
					&cli.Uint64Flag{Name: "number", Required: true, Usage: "sector number (the first one with --count)"},
					&cli.IntFlag{Name: "count", Value: 1, Usage: "number of consecutive sectors to write"},
					&cli.StringFlag{Name: "size", Value: "2KiB", Usage: "sector size: 2KiB, 8MiB or 512MiB"},
					&cli.StringFlag{Name: "dir", Required: true, Usage: "storage path (sealed/ and cache/ are created in it)"},
					&cli.BoolFlag{Name: "upgraded", Usage: "write a snap-upgraded sector (update/, update-cache/)"},
					&cli.BoolFlag{Name: "random", Usage: "random replica data instead of data derived from miner and number"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object per sector"},
				},
				Action: sectorCreateAction,
			}},
		}},
	}
}

// sectorJSON is the --json output of util sector create.
type sectorJSON struct {
	Miner      uint64 `json:"miner"`
	Number     uint64 `json:"number"`
	Size       string `json:"size"`
	ProofType  string `json:"proof_type"`
	SealProof  int64  `json:"seal_proof"`
	CommR      string `json:"comm_r"`
	SealedCID  string `json:"sealed_cid"`
	CommC      string `json:"comm_c"`
	CommRLast  string `json:"comm_r_last"`
	SealedFile string `json:"sealed_file"`
	CacheDir   string `json:"cache_dir"`
	Upgraded   bool   `json:"upgraded"`
}

func sectorCreateAction(c *cli.Context) error {
	size, err := sectorfile.ParseSize(c.String("size"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if c.Int("count") < 1 {
		return cli.Exit("--count must be at least 1", 2)
	}
	enc := json.NewEncoder(os.Stdout)
	for i := range c.Int("count") {
		s, err := sectorfile.Create(c.Context, sectorfile.CreateOptions{
			Miner: c.Uint64("miner"), Number: c.Uint64("number") + uint64(i), Size: size,
			Dir: c.String("dir"), Upgraded: c.Bool("upgraded"), Random: c.Bool("random"),
		})
		if err != nil {
			return err
		}
		if c.Bool("json") {
			if err := enc.Encode(sectorJSON{
				Miner: s.Miner, Number: s.Number, Size: sectorfile.FormatSize(s.Size),
				ProofType: s.ProofType.Name, SealProof: s.ProofType.SealProof,
				CommR: hex.EncodeToString(s.CommR[:]), SealedCID: sectorfile.SealedCID(s.CommR),
				CommC: hex.EncodeToString(s.CommC[:]), CommRLast: hex.EncodeToString(s.CommRLast[:]),
				SealedFile: s.Paths.Sealed, CacheDir: s.Paths.Cache, Upgraded: s.Upgraded,
			}); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("%s  size=%s  comm_r=%x  sealed_cid=%s\n  sealed=%s\n  cache=%s\n",
			sectorfile.SectorName(s.Miner, s.Number), sectorfile.FormatSize(s.Size), s.CommR[:], sectorfile.SealedCID(s.CommR),
			s.Paths.Sealed, s.Paths.Cache)
	}
	return nil
}
