// Command vsm is the clustered WindowPoSt service. This package only parses
// flags, builds configuration and calls into the library packages.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "vsm:", err)
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "vsm",
		Version:              version,
		Usage:                "clustered WindowPoSt service for Filecoin storage providers",
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "home",
				Usage:   "node home directory (config, raft data, secrets)",
				EnvVars: []string{"VSM_HOME"},
				Value:   "~/.vsm",
			},
			&cli.StringFlag{
				Name:  "log-level",
				Usage: "debug, info, warn or error",
				Value: "info",
			},
		},
		Commands: []*cli.Command{
			daemonCommand(),
			minerCommand(),
			storageCommand(),
			sectorCommand(),
			authCommand(),
			clusterCommand(),
			wdpostCommand(),
			winpostCommand(),
			utilCommand(),
			devnetCommand(),
			provingCommand(),
		},
	}
}
