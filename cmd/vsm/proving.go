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
				"A child that fails a batch (no answer within its CheckTimeoutSecs, a malformed answer,\n" +
				"an exit) is named with how it failed, and the batch is retried on another child; a\n" +
				"sector no child could check is listed as unchecked.\n" +
				"Exit status 0 only when every sector is good. The node must run with --ext-prover.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "miner", Usage: "miner actor: t01000, f01000 or 1000", Required: true},
				&cli.StringFlag{Name: "sectors", Usage: "sector numbers to check, e.g. 1,2,5-9 (default: every sector the store knows for the miner)"},
				&cli.BoolFlag{Name: "all", Usage: "list good sectors too"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "give up on the whole check after this long (a large miner's check reads every sector)"},
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
	if c.Duration("timeout") <= 0 {
		return cli.Exit(fmt.Sprintf("--timeout %s: must be positive, e.g. 30m", c.Duration("timeout")), 2)
	}
	start := time.Now()
	var res []rpc.SectorCheckResult
	if err := callWithin(c, c.Duration("timeout"), rpc.MethodProvingCheck, &res, params...); err != nil {
		return fmt.Errorf("proving check of t0%d (--timeout %s): %w", miner, c.Duration("timeout"), err)
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else if err := printCheck(c, miner, res, time.Since(start)); err != nil {
		return err
	}
	var faulty, unchecked int
	for _, r := range res {
		switch {
		case r.Unchecked:
			unchecked++
		case !r.Good:
			faulty++
		}
	}
	switch {
	case unchecked > 0:
		return cli.Exit(fmt.Sprintf("%d of %d sectors of t0%d are faulty and %d could not be checked (see the children's failures above)", faulty, len(res), miner, unchecked), 1)
	case faulty > 0:
		return cli.Exit(fmt.Sprintf("%d of %d sectors of t0%d are faulty", faulty, len(res), miner), 1)
	}
	return nil
}

// printCheck prints the sectors worth a look (faulty, unchecked, checked
// only after a child failed; every sector with --all), then the distinct
// child failures in full, then the counts.
func printCheck(c *cli.Context, miner uint64, res []rpc.SectorCheckResult, took time.Duration) error {
	var rows [][]string
	var good, faulty, unchecked int
	var failures []string
	seen := map[string]bool{}
	for _, r := range res {
		status := "good"
		switch {
		case r.Unchecked:
			status = "unchecked"
			unchecked++
		case !r.Good:
			status = "faulty"
			faulty++
		default:
			good++
		}
		for _, f := range r.Failures {
			line := fmt.Sprintf("%s (pid %d) %s: %s", f.Child, f.PID, f.Kind, f.Detail)
			if !seen[line] {
				seen[line] = true
				failures = append(failures, line)
			}
		}
		if status != "good" || len(r.Failures) > 0 || c.Bool("all") {
			rows = append(rows, []string{sectorfile.SectorName(miner, r.Sector), strconv.FormatUint(r.Sector, 10), status, checkReason(r)})
		}
	}
	w := c.App.Writer
	if len(rows) > 0 {
		if err := table(w, []string{"SECTOR", "NUMBER", "STATUS", "REASON"}, rows); err != nil {
			return err
		}
	}
	if len(failures) > 0 {
		fmt.Fprintf(w, "prover children that failed during the check:\n")
		for _, f := range failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintf(w, "checked %d sectors of t0%d in %s: %d good, %d faulty", len(res), miner, took.Round(time.Millisecond), good, faulty)
	if unchecked > 0 {
		fmt.Fprintf(w, ", %d unchecked", unchecked)
	}
	fmt.Fprintln(w)
	return nil
}

// checkReason is a sector's REASON column: which children failed it and
// how, then who answered (the retry that succeeded), then the fault.
func checkReason(r rpc.SectorCheckResult) string {
	if r.Unchecked {
		return r.Reason
	}
	var parts []string
	for _, f := range r.Failures {
		parts = append(parts, fmt.Sprintf("%s %s", f.Child, f.Kind))
	}
	if len(parts) > 0 {
		parts = []string{strings.Join(parts, ", ") + "; retry on " + r.Child + " succeeded"}
	}
	if r.Reason != "" {
		parts = append(parts, r.Reason)
	}
	return strings.Join(parts, "; ")
}
