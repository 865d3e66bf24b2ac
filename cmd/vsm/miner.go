package main

import (
	"fmt"
	"strconv"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/rpc"
)

func minerCommand() *cli.Command {
	return &cli.Command{
		Name:  "miner",
		Usage: "manage the miners whose sectors this cluster proves",
		Subcommands: withAPI(
			&cli.Command{
				Name:      "add",
				Usage:     "add a miner (or change its settings)",
				ArgsUsage: "ACTOR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "sector-size", Usage: "2KiB, 8MiB, 512MiB, 32GiB or 64GiB"},
					&cli.Int64Flag{Name: "proof", Usage: "WindowPoSt proof type number (instead of --sector-size)"},
					&cli.BoolFlag{Name: "disabled", Usage: "add the miner without proving its deadlines yet"},
				},
				Action: minerAdd,
			},
			&cli.Command{Name: "list", Usage: "list miners", Flags: []cli.Flag{jsonFlag}, Action: minerList},
			&cli.Command{
				Name:      "remove",
				Usage:     "remove a miner",
				ArgsUsage: "ACTOR",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "purge", Usage: "also delete all its sector locations and assignments"}},
				Action:    minerRemove,
			},
		),
	}
}

// parseActor accepts t01000, f01000 or 1000.
func parseActor(s string) (uint64, error) {
	if id, err := strconv.ParseUint(s, 10, 64); err == nil {
		return id, nil
	}
	a, err := address.NewFromString(s)
	if err != nil {
		return 0, fmt.Errorf("miner %q: want an actor id like t01000, f01000 or 1000: %w", s, err)
	}
	id, err := fullnode.ActorID(a)
	if err != nil {
		return 0, fmt.Errorf("miner %q: want an actor id like t01000, f01000 or 1000: %w", s, err)
	}
	return id, nil
}

func actorArg(c *cli.Context) (uint64, error) {
	if c.NArg() != 1 {
		return 0, fmt.Errorf("want one ACTOR argument (e.g. t01000), got %d", c.NArg())
	}
	return parseActor(c.Args().First())
}

// minerFromFlags derives the proof type and partition size from
// --sector-size or --proof, so operators never type a partition size.
func minerFromFlags(c *cli.Context, id uint64) (fsm.Miner, error) {
	var proof abi.RegisteredPoStProof
	switch {
	case c.IsSet("proof") && c.IsSet("sector-size"):
		return fsm.Miner{}, fmt.Errorf("give --sector-size or --proof, not both")
	case c.IsSet("proof"):
		proof = abi.RegisteredPoStProof(c.Int64("proof"))
	case c.IsSet("sector-size"):
		size, err := fullnode.ParseSectorSize(c.String("sector-size"))
		if err != nil {
			return fsm.Miner{}, err
		}
		if proof, err = fullnode.WindowPoStProofForSize(size); err != nil {
			return fsm.Miner{}, err
		}
	default:
		return fsm.Miner{}, fmt.Errorf("give --sector-size (e.g. 32GiB) or --proof")
	}
	size, err := proof.SectorSize()
	if err != nil {
		return fsm.Miner{}, err
	}
	part, err := builtin.PoStProofWindowPoStPartitionSectors(proof)
	if err != nil {
		return fsm.Miner{}, err
	}
	return fsm.Miner{ID: id, SectorSize: uint64(size), PoStProof: uint8(proof), PartitionSize: uint32(part), Enabled: !c.Bool("disabled")}, nil
}

func minerAdd(c *cli.Context) error {
	id, err := actorArg(c)
	if err != nil {
		return err
	}
	m, err := minerFromFlags(c, id)
	if err != nil {
		return err
	}
	if err := call(c, rpc.MethodMinerAdd, nil, m); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "miner t0%d: %s sectors, partitions of %d\n", id, abi.SectorSize(m.SectorSize).ShortString(), m.PartitionSize)
	return nil
}

func minerList(c *cli.Context) error {
	var ms []fsm.MinerSummary
	if err := call(c, rpc.MethodMinerList, &ms); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, ms)
	}
	rows := make([][]string, len(ms))
	for i, m := range ms {
		rows[i] = []string{fmt.Sprintf("t0%d", m.ID), abi.SectorSize(m.SectorSize).ShortString(), strconv.Itoa(int(m.PoStProof)), strconv.Itoa(int(m.PartitionSize)), strconv.FormatBool(m.Enabled), strconv.Itoa(m.Sectors)}
	}
	return table(c.App.Writer, []string{"MINER", "SECTOR SIZE", "POST PROOF", "PARTITION", "ENABLED", "SECTORS"}, rows)
}

func minerRemove(c *cli.Context) error {
	id, err := actorArg(c)
	if err != nil {
		return err
	}
	if err := call(c, rpc.MethodMinerRemove, nil, id, c.Bool("purge")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "miner t0%d removed\n", id)
	return nil
}
