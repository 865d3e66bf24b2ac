package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
)

// wdpostCommand is the ext-prover child of a [[WdPost]] block: the daemon
// starts it and talks to it over stdin/stdout, so nothing but protocol
// lines may go to stdout; logs go to stderr.
func wdpostCommand() *cli.Command {
	return childCommand("wdpost", prover.ReadyLine,
		"serve WindowPoSt and WinningPoSt requests on stdin/stdout with the built-in engine (started by the daemon as a [[WdPost]] ext-prover child)")
}

// winpostCommand is the same child for a [[WinPost]] block: only its
// ready line differs, as the original's winning_post processor's does.
func winpostCommand() *cli.Command {
	return childCommand("winpost", prover.WinningReadyLine,
		"serve WinningPoSt requests on stdin/stdout with the built-in engine (started by the daemon as a [[WinPost]] ext-prover child)")
}

func childCommand(name, ready, usage string) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Description: "Speaks the damocles vc-processors protocol (docs/ext-prover.md): prints \"" + ready + "\",\n" +
			"then answers newline-delimited JSON requests. The built-in engine's proofs are NOT valid on Filecoin mainnet.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "parallel-reads", Value: engine.DefaultParallel, Usage: "sectors read at once per request (bounded parallel I/O)"},
			&cli.IntFlag{Name: "concurrent", Value: 0, Usage: "tasks run at once; 0 leaves the limit to the parent's Concurrent setting"},
		},
		Action: func(c *cli.Context) error {
			if n := c.Int("parallel-reads"); n < 1 {
				return cli.Exit("--parallel-reads must be at least 1", 2)
			}
			log, err := cliLogger(c)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM)
			defer stop()
			h := prover.PoStHandler(engine.Prover{Parallel: c.Int("parallel-reads")}, log)
			return prover.Serve(ctx, os.Stdin, os.Stdout, h, prover.ServeOptions{Logger: log, MaxConcurrent: c.Int("concurrent"), ReadyLine: ready})
		},
	}
}
