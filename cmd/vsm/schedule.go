package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/prover/runner"
	"github.com/vsm-project/vsm/rpc"
)

func clusterScheduleCommand() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "the next 24 h of deadline windows with their owners, and each node's load",
		Description: "Rows are deadline windows in the order they open (epochs), with the owner in the\n" +
			"replicated state and the partitions to prove. The node asked computes the plan from its\n" +
			"chain and gossip view; moves the leader has not written yet are listed as pending.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "miner", Usage: "only this miner: t01000, f01000 or 1000"},
			jsonFlag,
		},
		Action: clusterSchedule,
	}
}

func clusterSchedule(c *cli.Context) error {
	var miner uint64
	if c.IsSet("miner") {
		m, err := parseActor(c.String("miner"))
		if err != nil {
			return err
		}
		miner = m
	}
	var v rpc.ScheduleView
	if err := call(c, rpc.MethodClusterSchedule, &v, miner); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "head %d; windows opening in the next 24 h (2880 epochs)\n", v.Head)
	rows := make([][]string, len(v.Slots))
	for i, s := range v.Slots {
		owner := s.Owner
		if owner == "" {
			owner = "-"
		}
		last := s.LastOutcome
		if last == "" {
			last = "-"
		}
		rows[i] = []string{fmt.Sprintf("t0%d", s.Miner), strconv.Itoa(int(s.Deadline)), strconv.FormatInt(s.Open, 10), strconv.FormatInt(s.Close, 10), owner, strconv.Itoa(s.Partitions), last}
	}
	if err := table(w, []string{"MINER", "DEADLINE", "OPENS", "CLOSES", "OWNER", "PARTITIONS", "LAST"}, rows); err != nil {
		return err
	}
	// A failed last outcome is spelt out: a refusal carries the miner
	// actor's exit code and message.
	for _, s := range v.Slots {
		if s.LastOutcome == "failed" && s.LastMessage != "" {
			fmt.Fprintf(w, "t0%d deadline %d last failed: %s\n", s.Miner, s.Deadline, s.LastMessage)
		}
	}
	fmt.Fprintln(w)
	if err := printLoads(w, v); err != nil {
		return err
	}
	if err := printUnplaced(w, v.Unplaced); err != nil {
		return err
	}
	for _, m := range v.Pending {
		fmt.Fprintf(w, "pending move %s: %q -> %q (%s)\n", m.Key, m.From, m.To, m.Reason)
	}
	return nil
}

// printLoads prints each node's share of the plan in GPU time, and the
// lower bound it is measured against.
func printLoads(w io.Writer, v rpc.ScheduleView) error {
	ratio := "-"
	if v.LowerBound > 0 {
		ratio = fmt.Sprintf("%.2fx", v.PeakUtilization/v.LowerBound)
	}
	fmt.Fprintf(w, "lower bound %s of all usable GPUs (the cluster's busiest moment: no node's peak share can be lower); busiest node %s, %s the bound\n",
		percent(v.LowerBound), percent(v.PeakUtilization), ratio)
	rows := make([][]string, 0, len(v.Nodes))
	assumed := false
	for _, n := range v.Nodes {
		speed := n.PartitionTime.String()
		if n.SpeedAssumed {
			speed += " (assumed)"
			assumed = true
		}
		rows = append(rows, []string{n.ID, strconv.Itoa(n.GPUs), strconv.FormatBool(n.Eligible), strconv.Itoa(n.Deadlines), strconv.Itoa(n.Partitions), speed,
			gpuTime(n.GPUHours), fmt.Sprintf("%.3g", n.Peak), percent(n.Utilization())})
	}
	if err := table(w, []string{"NODE", "GPUS", "ELIGIBLE", "DEADLINES", "PARTITIONS", "PER PARTITION", "GPU TIME/24H", "PEAK GPUS", "PEAK SHARE"}, rows); err != nil {
		return err
	}
	if assumed {
		fmt.Fprintln(w, "(assumed): the node has not measured a proof yet; the scheduler counts the default time per partition until it does")
	}
	return nil
}

// printUnplaced lists the deadlines without a fitting owner and why.
func printUnplaced(w io.Writer, us []schedule.Unplaced) error {
	if len(us) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%d deadlines without a fitting owner (docs/scheduler.md, \"Unplaced deadlines and what to do\"):\n", len(us))
	rows := make([][]string, len(us))
	for i, u := range us {
		owner := u.Owner
		if owner == "" {
			owner = "-"
		}
		rows[i] = []string{u.Key.String(), string(u.Reason), owner, u.Detail}
	}
	return table(w, []string{"DEADLINE", "REASON", "OWNER", "WHY"}, rows)
}

// gpuTime shows GPU time readably at any scale: a devnet's 2 KiB
// partitions take a millisecond each, and "%.2f" GPU-hours showed 0.00.
func gpuTime(hours float64) string {
	d := time.Duration(hours * float64(time.Hour))
	switch {
	case d == 0:
		return "0"
	case d < time.Second:
		return d.Round(time.Microsecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// percent shows a share with three significant digits, so a small load
// does not print as 0%.
func percent(share float64) string { return fmt.Sprintf("%.3g%%", 100*share) }

func provingComputeCommand() *cli.Command {
	return &cli.Command{
		Name:  "compute",
		Usage: "compute one deadline's WindowPoSt now through this node's children (and submit it with --submit)",
		Description: "Proves the deadline's current window, or its next one if it has closed. Before the\n" +
			"challenge epoch the head's randomness stands in, which checks sectors and children but\n" +
			"cannot be submitted; --submit works only while the window is open.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "miner", Usage: "miner actor: t01000, f01000 or 1000", Required: true},
			&cli.IntFlag{Name: "deadline", Usage: "deadline index 0..47", Required: true},
			&cli.BoolFlag{Name: "submit", Usage: "submit the proofs (the window must be open)"},
			jsonFlag,
		},
		Action: provingCompute,
	}
}

func provingCompute(c *cli.Context) error {
	miner, err := parseActor(c.String("miner"))
	if err != nil {
		return err
	}
	d := c.Int("deadline")
	if d < 0 || d > 47 {
		return cli.Exit(fmt.Sprintf("--deadline %d: want 0..47", d), 2)
	}
	var res runner.ComputeResult
	if err := call(c, rpc.MethodProvingCompute, &res, miner, d, c.Bool("submit")); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, res)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "t0%d deadline %d: window %d..%d (head %d), randomness of epoch %d\n", res.Miner, res.Deadline, res.Open, res.Close, res.Head, res.RandomnessEpoch)
	if res.Note != "" {
		fmt.Fprintln(w, "note:", res.Note)
	}
	rows := make([][]string, len(res.Partitions))
	skipped := 0
	for i, p := range res.Partitions {
		skipped += len(p.Skipped)
		rows[i] = []string{strconv.FormatUint(p.Index, 10), strconv.FormatUint(p.Sectors, 10), fmt.Sprint(p.Skipped), strconv.Itoa(p.Message), strconv.Itoa(p.ProofBytes)}
	}
	// One proof per message covers all of its partitions, so PROOF BYTES
	// repeats along a message's rows.
	if err := table(w, []string{"PARTITION", "SECTORS", "SKIPPED", "MESSAGE", "PROOF BYTES"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(w, "computed %d partitions in %d ms, %d sectors skipped", len(res.Partitions), res.TookMS, skipped)
	if res.Submitted {
		fmt.Fprintf(w, "; submitted in %d messages", res.Messages)
	}
	fmt.Fprintln(w)
	return nil
}
