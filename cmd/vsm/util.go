package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

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
					&cli.StringFlag{Name: "miner", Required: true, Usage: "miner actor: t01000, f01000 or 1000"},
					&cli.Uint64Flag{Name: "number", Required: true, Usage: "sector number (the first one with --count)"},
					&cli.IntFlag{Name: "count", Value: 1, Usage: "number of consecutive sectors to write"},
					&cli.StringFlag{Name: "size", Value: "2KiB", Usage: "sector size: 2KiB, 8MiB or 512MiB"},
					&cli.StringFlag{Name: "dir", Required: true, Usage: "storage path (sealed/ and cache/ are created in it)"},
					&cli.BoolFlag{Name: "upgraded", Usage: "write a snap-upgraded sector (update/, update-cache/)"},
					&cli.BoolFlag{Name: "random", Usage: "random replica data instead of data derived from miner and number"},
					&cli.StringFlag{Name: "storage", Usage: "with --json: the storage instance name the records give as sealed and cache (default: the base name of --dir)"},
					&cli.BoolFlag{Name: "json", Usage: "print one location per line in the format 'vsm sector location import' reads (docs/import.md), importable as printed"},
				},
				Action: sectorCreateAction,
			}},
		}},
	}
}

// sectorJSON is the --json output of util sector create: exactly the
// JSON-lines record `sector location import` reads, so the output imports
// as printed (it used to print comm_r/seal_proof, which the strict importer
// rightly refused). The files' paths follow from --dir and the Lotus layout;
// the text output prints them.
type sectorJSON struct {
	Miner    string `json:"miner"`
	Number   uint64 `json:"number"`
	Sealed   string `json:"sealed"`
	Cache    string `json:"cache"`
	Upgraded bool   `json:"upgraded,omitempty"`
	Proof    int64  `json:"proof"`
	CommR    string `json:"commr"`
}

func sectorCreateAction(c *cli.Context) error {
	size, err := sectorfile.ParseSize(c.String("size"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if c.Int("count") < 1 {
		return cli.Exit("--count must be at least 1", 2)
	}
	miner, err := parseActor(c.String("miner"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	enc := json.NewEncoder(os.Stdout)
	storage := c.String("storage")
	if storage == "" {
		storage = filepath.Base(filepath.Clean(c.String("dir")))
	}
	for i := range c.Int("count") {
		s, err := sectorfile.Create(c.Context, sectorfile.CreateOptions{
			Miner: miner, Number: c.Uint64("number") + uint64(i), Size: size,
			Dir: c.String("dir"), Upgraded: c.Bool("upgraded"), Random: c.Bool("random"),
		})
		if err != nil {
			return err
		}
		if c.Bool("json") {
			if err := enc.Encode(sectorJSON{
				Miner: fmt.Sprintf("t0%d", s.Miner), Number: s.Number, Sealed: storage, Cache: storage,
				Upgraded: s.Upgraded, Proof: s.ProofType.SealProof, CommR: hex.EncodeToString(s.CommR[:]),
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
