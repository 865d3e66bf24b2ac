package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
)

// devnetCommand runs and inspects the simulated chain (docs/devnet.md).
func devnetCommand() *cli.Command {
	dirFlag := &cli.StringFlag{Name: "dir", Usage: "devnet directory (state, token, api-info, gateway-info, sectors)", Value: "devnet"}
	return &cli.Command{
		Name:  "devnet",
		Usage: "a simulated Filecoin chain for running vsm on one machine (not a real chain)",
		Subcommands: []*cli.Command{
			{
				Name:  "run",
				Usage: "seal the spec's sectors (first run) and serve the full-node API, advancing epochs",
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "spec", Usage: "spec file (TOML or JSON): miners, sectors, policy", Required: true},
					&cli.StringFlag{Name: "listen", Usage: "HTTP listen address", Value: "127.0.0.1:1234"},
					&cli.DurationFlag{Name: "epoch", Usage: "wall time per epoch", Value: 100 * time.Millisecond},
					&cli.BoolFlag{Name: "allow-remote", Usage: "allow a non-loopback --listen (reads need no token)"},
					&cli.StringFlag{Name: "ffi-prover", Usage: "vsm-ffi-prover binary for a spec with Engine = \"ffi\" (default: $VSM_FFI_PROVER, beside vsm, or on the PATH)"},
				},
				Action: devnetRun,
			},
			{
				Name:  "report",
				Usage: "print deadline totals (proven, faulty, missed) from a running devnet, or from its directory",
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "api-info", Usage: "TOKEN:ADDRESS of a running devnet (default: DIR/api-info)", EnvVars: []string{"FULLNODE_API_INFO"}},
					&cli.IntFlag{Name: "records", Usage: "how many recent deadline records to show", Value: 0},
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				},
				Action: devnetReport,
			},
			{
				Name:  "locations",
				Usage: "print a running devnet's sectors as 'vsm sector location import' lines (CommR and proof type from the chain)",
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "api-info", Usage: "TOKEN:ADDRESS of a running devnet (default: DIR/api-info)", EnvVars: []string{"FULLNODE_API_INFO"}},
					&cli.StringFlag{Name: "storage", Usage: "storage instance name to write as sealed and cache", Value: "sectors"},
				},
				Action: devnetLocations,
			},
			{
				Name:  "miners",
				Usage: "list the devnet's miners and where their sectors are",
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "api-info", Usage: "TOKEN:ADDRESS of a running devnet (default: DIR/api-info)", EnvVars: []string{"FULLNODE_API_INFO"}},
					&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
				},
				Action: devnetMiners,
			},
		},
	}
}

func devnetRun(c *cli.Context) error {
	if c.Duration("epoch") <= 0 {
		return cli.Exit("--epoch must be positive, e.g. 100ms", 2)
	}
	log, err := cliLogger(c)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	spec, err := devnet.LoadSpec(c.String("spec"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := c.String("dir")
	ln, err := devnet.Listen(c.String("listen"), c.Bool("allow-remote"))
	if err != nil {
		return err
	}
	cfg := devnet.Config{Dir: dir, Spec: spec, BlockTime: c.Duration("epoch"), Logger: log}
	if spec.Engine == devnet.EngineFFI {
		bin := c.String("ffi-prover")
		if bin == "" {
			bin = devnet.DefaultFFIProver()
		}
		eng, err := devnet.NewFFIEngine(ctx, bin, 2, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer func() { _ = eng.Close(context.Background()) }()
		cfg.Verifier, cfg.Sealer = eng, eng
	}
	dn, err := devnet.New(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	info := dn.APIInfo(ln.Addr())
	if err := os.WriteFile(filepath.Join(dir, devnet.APIInfoFile), []byte(info+"\n"), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("writing api-info: %w", err)
	}
	gw := dn.GatewayInfo(ln.Addr())
	if err := os.WriteFile(filepath.Join(dir, devnet.GatewayInfoFile), []byte(gw+"\n"), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("writing gateway-info: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "FULLNODE_API_INFO=%s\nGATEWAY_API=%s\n", info, gw)
	log.Info("devnet serving", zap.String("listen", ln.Addr().String()), zap.String("dir", dir))

	errCh := make(chan error, 2)
	go func() { errCh <- dn.Serve(ctx, ln) }()
	go func() { errCh <- dn.Run(ctx, c.Duration("epoch")) }()
	var first error
	for i := 0; i < 2; i++ {
		if err := <-errCh; err != nil && first == nil {
			first = err
			stop() // one half failed: stop the other
		}
	}
	r := dn.Report(0)
	log.Info("devnet stopped", zap.Int64("height", int64(r.Height)), zap.String("totals", r.String()))
	return first
}

// devnetClient returns a client for a running devnet, from --api-info or
// DIR/api-info; ok is false when neither names one.
func devnetClient(c *cli.Context) (*fullnode.Client, bool, error) {
	info := c.String("api-info")
	if info == "" {
		b, err := os.ReadFile(filepath.Join(c.String("dir"), devnet.APIInfoFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		info = strings.TrimSpace(string(b))
	}
	cl, err := fullnode.Dial(info, nil, fullnode.WithCallTimeout(10*time.Second))
	if err != nil {
		return nil, false, err
	}
	return cl, true, nil
}

func devnetReport(c *cli.Context) error {
	var r devnet.Report
	cl, ok, err := devnetClient(c)
	if err != nil {
		return err
	}
	live := false
	if ok {
		ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
		err = cl.Call(ctx, "Devnet.Report", &r, c.Int("records"))
		cancel()
		if err == nil {
			live = true
		} else if c.String("api-info") != "" {
			return fmt.Errorf("devnet report: %w", err)
		}
	}
	if !live {
		// Not running (or never started with this dir): read the saved state.
		if r, err = devnet.ReadReport(c.String("dir"), c.Int("records")); err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "devnet not reachable; reporting from %s\n", filepath.Join(c.String("dir"), devnet.StateFile))
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	if len(r.Records) > 0 {
		tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MINER\tPERIOD\tDEADLINE\tOPEN\tCLOSE\tOUTCOME\tPARTITIONS\tPROVEN\tMISSED\tFAULTY SECTORS")
		for _, rec := range r.Records {
			fmt.Fprintf(tw, "t0%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\n", rec.Miner, rec.PeriodStart, rec.Index,
				rec.Open, rec.Close, rec.Outcome, rec.Partitions, rec.ProvenPartitions, rec.MissedPartitions, rec.FaultySectors)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := printWinRecords(c.App.Writer, r.WinRecords); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "height %d\n%s\n%s\n", r.Height, r.WinningString(), r.String())
	return nil
}

// printWinRecords lists elected rounds, the round first so that a line
// never starts like a deadline record's (t0...).
func printWinRecords(w io.Writer, recs []devnet.WinRecord) error {
	if len(recs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUND\tMINER\tSECTOR\tOUTCOME\tPROVER\tATTEMPTS\tMS\tREASON")
	for _, rec := range recs {
		fmt.Fprintf(tw, "%d\tt0%d\t%d\t%s\t%s\t%d\t%d\t%s\n", rec.Round, rec.Miner, rec.Sector, rec.Outcome, rec.Prover, rec.Attempts, rec.TookMs, rec.Reason)
	}
	return tw.Flush()
}

func devnetMiners(c *cli.Context) error {
	cl, ok, err := devnetClient(c)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no running devnet: give --api-info or a --dir with an api-info file")
	}
	var ms []devnet.MinerSummary
	if err := cl.Call(c.Context, "Devnet.Miners", &ms); err != nil {
		return fmt.Errorf("devnet miners: %w", err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(ms)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MINER\tWORKER\tSECTOR SIZE\tSECTORS\tPERIOD OFFSET\tSECTOR DIR")
	for _, m := range ms {
		fmt.Fprintf(tw, "t0%d\tt0%d\t%s\t%d\t%d\t%s\n", m.ID, m.Worker, abi.SectorSize(m.SectorSize).ShortString(), m.Sectors, m.ProvingPeriodOffset, m.SectorDir)
	}
	return tw.Flush()
}

// devnetLocations lists every sector of every devnet miner through the
// full-node API, as a real chain would be asked: the deadlines' partitions
// name the sectors, StateSectorGetInfo gives each one's CommR and proof.
func devnetLocations(c *cli.Context) error {
	cl, ok, err := devnetClient(c)
	if err != nil {
		return err
	}
	if !ok {
		return cli.Exit("no running devnet: give --api-info or a --dir with api-info", 2)
	}
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	var miners []devnet.MinerSummary
	if err := cl.Call(ctx, "Devnet.Miners", &miners); err != nil {
		return fmt.Errorf("devnet miners: %w", err)
	}
	enc := json.NewEncoder(c.App.Writer)
	for _, m := range miners {
		maddr := fullnode.IDAddress(m.ID)
		dls, err := cl.StateMinerDeadlines(ctx, maddr, nil)
		if err != nil {
			return fmt.Errorf("deadlines of %s: %w", maddr, err)
		}
		for d := range dls {
			parts, err := cl.StateMinerPartitions(ctx, maddr, uint64(d), nil)
			if err != nil {
				return fmt.Errorf("partitions of %s deadline %d: %w", maddr, d, err)
			}
			for _, p := range parts {
				err := p.AllSectors.ForEach(func(n uint64) error {
					si, err := cl.StateSectorGetInfo(ctx, maddr, abi.SectorNumber(n), nil)
					if err != nil || si == nil {
						return fmt.Errorf("sector %d of %s: %v", n, maddr, err)
					}
					commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
					if err != nil {
						return fmt.Errorf("sector %d of %s: sealed CID: %w", n, maddr, err)
					}
					return enc.Encode(map[string]any{"miner": m.ID, "number": n, "sealed": c.String("storage"), "cache": c.String("storage"),
						"proof": si.SealProof, "commr": hex.EncodeToString(commR)})
				})
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}
