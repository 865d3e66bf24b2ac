// Command vsm-ffi-prover is vsm's real proof engine: an ext-prover child on
// filecoin-ffi (rust-fil-proofs) that speaks the same protocol as
// `vsm wdpost` (docs/ext-prover.md), and the sealer of real test sectors.
//
// What is tested here, on the CPU: WindowPoSt and WinningPoSt SNARKs over
// 2 KiB and 8 MiB sectors sealed by `vsm-ffi-prover sector create`, with
// Groth16 parameters from a local setup (`make params`), verified by
// filecoin-ffi's verifier. Not tested here: the ceremony's parameters and
// 32/64 GiB sectors, and GPU builds (`make ffi-gpu`). Configure it in
// ext-prover.cfg:
//
//	[[WdPost]]
//	Bin = "/usr/local/bin/vsm-ffi-prover"
//	Args = ["wdpost"]
//	[WdPost.Envs]
//	CUDA_VISIBLE_DEVICES = "0"
//	FIL_PROOFS_PARAMETER_CACHE = "/var/tmp/filecoin-proof-parameters"
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/logging"
	"github.com/vsm-project/vsm/prover"
)

var version = "dev"

func main() {
	app := &cli.App{
		Name:    "vsm-ffi-prover",
		Usage:   "filecoin-ffi proof engine for vsm: ext-prover child and sector sealer",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)"},
		},
		Commands: []*cli.Command{
			{
				Name:  "wdpost",
				Usage: "serve WindowPoSt, WinningPoSt and verification requests on stdin/stdout (a [[WdPost]] child)",
				Description: "Prints 'window_post processor ready' once the PoSt parameters are found in\n" +
					"FIL_PROOFS_PARAMETER_CACHE (default " + defaultParamDir + "), then answers\n" +
					"newline-delimited JSON requests. Parameters stay loaded between requests.",
				Flags:  serveFlags(),
				Action: serveAction(prover.ReadyLine),
			},
			{
				Name:   "winpost",
				Usage:  "the same, as a [[WinPost]] child: prints 'winning_post processor ready'",
				Flags:  serveFlags(),
				Action: serveAction(prover.WinningReadyLine),
			},
			sectorCommand(),
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "vsm-ffi-prover:", err)
		os.Exit(1)
	}
}

func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "parallel-reads", Value: 8, Usage: "sectors whose challenged leaves are read at once (the vanilla proofs)"},
	}
}

func serveAction(ready string) cli.ActionFunc {
	return func(c *cli.Context) error { return serve(c, ready) }
}

func serve(c *cli.Context, ready string) error {
	log, err := logging.New(c.String("log-level"))
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	dir, err := checkParams()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "LOCAL-SETUP.txt")); err == nil {
		log.Warn("these parameters come from a local setup (make params): proofs made with them verify on no real chain", zap.String("dir", dir))
	} else {
		log.Info("parameters found", zap.String("dir", dir))
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM)
	defer stop()
	return prover.Serve(ctx, os.Stdin, os.Stdout, handler(log, c.Int("parallel-reads")), prover.ServeOptions{Logger: log, ReadyLine: ready})
}
