package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/importer"
	"github.com/vsm-project/vsm/rpc"
)

func sectorCommand() *cli.Command {
	minerFlag := &cli.StringFlag{Name: "miner", Usage: "miner actor: t01000, f01000 or 1000", Required: true}
	numberFlag := &cli.Uint64Flag{Name: "number", Usage: "sector number", Required: true}
	return &cli.Command{
		Name:  "sector",
		Usage: "sector metadata",
		Subcommands: []*cli.Command{{
			Name:  "location",
			Usage: "where each sector's sealed file and cache directory live",
			Subcommands: withAPI(
				&cli.Command{
					Name:  "put",
					Usage: "store one sector's location",
					Flags: []cli.Flag{minerFlag, numberFlag,
						&cli.StringFlag{Name: "sealed", Usage: "storage instance holding the sealed file", Required: true},
						&cli.StringFlag{Name: "cache", Usage: "storage instance holding the cache directory", Required: true},
						&cli.BoolFlag{Name: "upgraded", Usage: "snap-upgraded sector (update/ and update-cache/)"},
						&cli.UintFlag{Name: "proof", Usage: "seal proof type number"},
						&cli.StringFlag{Name: "commr", Usage: "replica commitment, 64 hex digits (default: from the chain's StateSectorGetInfo, with the proof type)"},
						&cli.StringFlag{Name: "chain-api", Usage: "full node FULLNODE_API_INFO to read CommR and the proof type from (default: Chain.API of this home's config.toml)", EnvVars: []string{"FULLNODE_API_INFO"}},
					},
					Action: locationPut,
				},
				&cli.Command{
					Name:   "get",
					Usage:  "show one sector's location",
					Flags:  []cli.Flag{minerFlag, numberFlag, jsonFlag, &cli.BoolFlag{Name: "consistent", Usage: "read through the leader (linearizable) instead of this node's replica"}},
					Action: locationGet,
				},
				&cli.Command{
					Name:  "list",
					Usage: "list a miner's sector locations",
					Flags: []cli.Flag{minerFlag, jsonFlag,
						&cli.BoolFlag{Name: "count", Usage: "print only the number of locations"},
						&cli.Uint64Flag{Name: "from", Usage: "first sector number"},
						&cli.IntFlag{Name: "limit", Usage: "at most this many (0: all)"},
					},
					Action: locationList,
				},
				&cli.Command{
					Name:   "delete",
					Usage:  "delete one sector's location",
					Flags:  []cli.Flag{minerFlag, numberFlag},
					Action: locationDelete,
				},
				&cli.Command{
					Name:  "import",
					Usage: "import locations from JSON lines or CSV (see docs/import.md), or straight from the original manager (--from-damocles-manager)",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "file", Usage: "input file; - for standard input"},
						&cli.StringFlag{Name: "from-damocles-manager", Aliases: []string{"from-venus-sector-manager"}, Usage: "migrate without an export: list --miner's sectors from the chain and ask the damocles-manager (venus-sector-manager) at http://HOST:PORT where each one is (its Venus.SectorIndexerFind)"},
						&cli.StringFlag{Name: "manager-token", Usage: "token for the original manager's API, if it needs one", EnvVars: []string{"VSM_MANAGER_TOKEN"}},
						&cli.StringFlag{Name: "miner", Usage: "with --from-damocles-manager: the miner whose sectors to import (t01000, f01000 or 1000)"},
						&cli.StringFlag{Name: "chain-api", Usage: "with --from-damocles-manager: full node FULLNODE_API_INFO (default: Chain.API of this home's config.toml)", EnvVars: []string{"FULLNODE_API_INFO"}},
						&cli.StringFlag{Name: "format", Usage: "jsonl or csv (default: from the file name, else jsonl)"},
						&cli.IntFlag{Name: "batch", Usage: "locations per request", Value: 10_000},
						&cli.IntFlag{Name: "parallel", Usage: "requests in flight", Value: 4},
						&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
					},
					Action: locationImport,
				},
			),
		}},
	}
}

func sectorIDFlags(c *cli.Context) (fsm.SectorID, error) {
	m, err := parseActor(c.String("miner"))
	if err != nil {
		return fsm.SectorID{}, err
	}
	id := fsm.SectorID{Miner: m, Number: c.Uint64("number")}
	if err := rpc.CheckSector(id); err != nil {
		return fsm.SectorID{}, fmt.Errorf("--number: %w", err)
	}
	return id, nil
}

func locationPut(c *cli.Context) error {
	id, err := sectorIDFlags(c)
	if err != nil {
		return err
	}
	l := fsm.SectorLocation{SectorID: id, Sealed: c.String("sealed"), Cache: c.String("cache"), Upgraded: c.Bool("upgraded")}
	if p := c.Uint("proof"); p > 255 {
		return fmt.Errorf("--proof %d: not a seal proof type", p)
	} else {
		l.SealProof = uint8(p)
	}
	if err := l.CommR.UnmarshalText([]byte(c.String("commr"))); err != nil {
		return fmt.Errorf("--commr: %w", err)
	}
	from := "--commr"
	if !c.IsSet("commr") {
		// The runner needs CommR (and the proof type) for every sector: a
		// zero CommR only showed up later, as "proving check" blaming the
		// files. Take them from the chain as the original does; keep what
		// an earlier import stored; else say what is missing.
		if from, err = fillFromChain(c, &l); err != nil {
			return err
		}
	}
	if err := call(c, rpc.MethodSectorLocationPut, nil, []fsm.SectorLocation{l}); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: sealed on %s, cache on %s, proof type %d, CommR %x (%s)\n", id, l.Sealed, l.Cache, l.SealProof, l.CommR, from)
	return nil
}

// fillFromChain sets CommR and the proof type of l from the chain
// (StateSectorGetInfo), or from the location already stored when no chain
// is configured. It says where they came from.
func fillFromChain(c *cli.Context, l *fsm.SectorLocation) (string, error) {
	chain, chainErr := dialChain(c)
	if chainErr == nil {
		ctx, cancel := context.WithTimeout(c.Context, callTimeout)
		defer cancel()
		cs, ok, err := importer.SectorFromChain(ctx, chain, l.SectorID.Miner, l.SectorID.Number)
		if err != nil {
			return "", fmt.Errorf("CommR of %s from the chain: %w (give --commr and --proof to store it without asking the chain)", l.SectorID, err)
		}
		if !ok {
			return "", fmt.Errorf("the chain has no sector %s: check --miner and --number (or give --commr and --proof)", l.SectorID)
		}
		if c.IsSet("proof") && l.SealProof != cs.SealProof {
			return "", fmt.Errorf("--proof %d, but the chain says sector %s has seal proof type %d", l.SealProof, l.SectorID, cs.SealProof)
		}
		l.CommR, l.SealProof = cs.CommR, cs.SealProof
		return "from the chain", nil
	}
	var old fsm.SectorLocation
	if err := call(c, rpc.MethodSectorLocationGet, &old, l.SectorID); err == nil && old.CommR != ([32]byte{}) {
		l.CommR = old.CommR
		if !c.IsSet("proof") {
			l.SealProof = old.SealProof
		}
		return "kept from the stored location", nil
	}
	// Stored all the same (the location alone serves proxies and the
	// sector indexer), but said plainly, here and by proving check.
	fmt.Fprintf(c.App.ErrWriter, "warning: %s is stored WITHOUT CommR, so it cannot be proven until it has one: give --commr HEX and --proof N, or a chain to read them from (--chain-api, FULLNODE_API_INFO, or Chain.API in config.toml; %v)\n", l.SectorID, chainErr)
	return "no CommR", nil
}

func locationGet(c *cli.Context) error {
	id, err := sectorIDFlags(c)
	if err != nil {
		return err
	}
	var l fsm.SectorLocation
	if err := call(c, rpc.MethodSectorLocationGet, &l, id, c.Bool("consistent")); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, l)
	}
	return table(c.App.Writer, []string{"SECTOR", "SEALED", "CACHE", "UPGRADED", "PROOF", "COMMR"}, [][]string{locationRow(l)})
}

func locationRow(l fsm.SectorLocation) []string {
	return []string{l.SectorID.String(), l.Sealed, l.Cache, strconv.FormatBool(l.Upgraded), strconv.Itoa(int(l.SealProof)), hex.EncodeToString(l.CommR[:])}
}

func locationList(c *cli.Context) error {
	m, err := parseActor(c.String("miner"))
	if err != nil {
		return err
	}
	if c.Bool("count") {
		var n int
		if err := call(c, rpc.MethodSectorLocationCount, &n, m); err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c.App.Writer, map[string]int{"count": n})
		}
		fmt.Fprintln(c.App.Writer, n)
		return nil
	}
	var locs []fsm.SectorLocation
	if err := call(c, rpc.MethodSectorLocationList, &locs, m, c.Uint64("from"), c.Int("limit")); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, locs)
	}
	rows := make([][]string, len(locs))
	for i, l := range locs {
		rows[i] = locationRow(l)
	}
	return table(c.App.Writer, []string{"SECTOR", "SEALED", "CACHE", "UPGRADED", "PROOF", "COMMR"}, rows)
}

func locationDelete(c *cli.Context) error {
	id, err := sectorIDFlags(c)
	if err != nil {
		return err
	}
	var res struct{ Changed int }
	if err := call(c, rpc.MethodSectorLocationDelete, &res, []fsm.SectorID{id}); err != nil {
		return err
	}
	if res.Changed == 0 {
		fmt.Fprintf(c.App.Writer, "%s had no location\n", id)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "%s deleted\n", id)
	return nil
}
