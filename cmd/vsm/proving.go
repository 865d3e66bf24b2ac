package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/prover/sectorfile"
	"github.com/vsm-project/vsm/rpc"
)

func provingCommand() *cli.Command {
	return &cli.Command{
		Name:  "proving",
		Usage: "WindowPoSt proving on this node",
		Subcommands: withAPI(&cli.Command{
			Name:  "check",
			Usage: "read fresh random challenges of a miner's sectors through the node's prover children",
			Description: "Like 'lotus-miner proving check': the node resolves each sector's sealed file and cache\n" +
				"directory from the store and its StoragePaths, and its ext-prover children read challenged\n" +
				"leaves and Merkle paths. Prints each faulty sector with the reason, then a summary.\n" +
				"Exit status 0 only when every sector is good. The node must run with --ext-prover.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "miner", Usage: "miner actor: t01000, f01000 or 1000", Required: true},
				&cli.StringFlag{Name: "sectors", Usage: "sector numbers to check, e.g. 1,2,5-9 (default: every sector the store knows for the miner)"},
				&cli.BoolFlag{Name: "all", Usage: "list good sectors too"},
				jsonFlag,
			},
			Action: provingCheck,
		}, provingComputeCommand()),
	}
}

// maxSectorList bounds --sectors, so a typo like 1-1000000000 is refused
// instead of building a huge request.
const maxSectorList = 10_000_000

// parseSectorList parses "1,2,5-9" into sector numbers in the order given.
func parseSectorList(s string) ([]uint64, error) {
	var out []uint64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("--sectors %q: empty item; use e.g. 1,2,5-9", s)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--sectors %q: %q is not a sector number or range", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 64); err != nil {
				return nil, fmt.Errorf("--sectors %q: %q is not a sector number or range", s, part)
			}
			if b < a {
				return nil, fmt.Errorf("--sectors %q: range %q ends before it starts", s, part)
			}
		}
		if b-a >= maxSectorList || uint64(len(out))+b-a+1 > maxSectorList {
			return nil, fmt.Errorf("--sectors %q: more than %d sectors", s, maxSectorList)
		}
		for n := a; ; n++ {
			out = append(out, n)
			if n == b {
				break
			}
		}
	}
	return out, nil
}

func provingCheck(c *cli.Context) error {
	miner, err := parseActor(c.String("miner"))
	if err != nil {
		return err
	}
	params := []any{miner}
	var n int
	if c.IsSet("sectors") {
		list, err := parseSectorList(c.String("sectors"))
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		params = append(params, list)
		n = len(list)
	} else if err := call(c, rpc.MethodSectorLocationCount, &n, miner); err != nil {
		return err
	}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.ErrWriter, "checking %d sectors of t0%d through the node's prover children...\n", n, miner)
	}
	start := time.Now()
	var res []rpc.SectorCheckResult
	if err := call(c, rpc.MethodProvingCheck, &res, params...); err != nil {
		return fmt.Errorf("proving check of t0%d: %w", miner, err)
	}
	var rows [][]string
	faulty := 0
	for _, r := range res {
		if !r.Good {
			faulty++
		}
		if !r.Good || c.Bool("all") {
			status, reason := "good", r.Reason
			if !r.Good {
				status = "faulty"
			}
			rows = append(rows, []string{sectorfile.SectorName(miner, r.Sector), strconv.FormatUint(r.Sector, 10), status, reason})
		}
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else {
		if len(rows) > 0 {
			if err := table(c.App.Writer, []string{"SECTOR", "NUMBER", "STATUS", "REASON"}, rows); err != nil {
				return err
			}
		}
		fmt.Fprintf(c.App.Writer, "checked %d sectors of t0%d in %s: %d good, %d faulty\n", len(res), miner, time.Since(start).Round(time.Millisecond), len(res)-faulty, faulty)
	}
	if faulty > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d sectors of t0%d are faulty", faulty, len(res), miner), 1)
	}
	return nil
}
