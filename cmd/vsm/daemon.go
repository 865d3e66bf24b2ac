package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/config"
	"github.com/vsm-project/vsm/daemon"
	"github.com/vsm-project/vsm/prover"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "initialise and run a vsm node",
		Subcommands: []*cli.Command{
			{
				Name:  "init",
				Usage: "create the node's home: config.toml, ext-prover.cfg and the token secret",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "node-id", Usage: "permanent id of this member (default: random)"},
					&cli.StringFlag{Name: "listen", Usage: "API address HOST:PORT (default 127.0.0.1:1789)"},
					&cli.StringFlag{Name: "raft-addr", Usage: "raft address HOST:PORT (default 127.0.0.1:1790)"},
					&cli.StringFlag{Name: "gossip-addr", Usage: "gossip address HOST:PORT (default 127.0.0.1:1791)"},
					&cli.StringFlag{Name: "secrets", Usage: "secrets file from 'vsm cluster secrets export', to join an existing cluster"},
				},
				Action: daemonInit,
			},
			{
				Name:  "run",
				Usage: "run the node",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "bootstrap", Usage: "start a new single-voter cluster if this node has no raft state yet (harmless on restart; a node that has held state and lost it refuses to start instead, see docs/runbooks/raft-data.md)"},
					&cli.StringFlag{Name: "listen", Usage: "API address HOST:PORT (overrides Node.Listen)"},
					&cli.StringFlag{Name: "raft-addr", Usage: "raft address HOST:PORT (overrides Node.RaftAddr)"},
					&cli.StringFlag{Name: "gossip-addr", Usage: "gossip address HOST:PORT (overrides Gossip.Addr)"},
					&cli.StringFlag{Name: "node-id", Usage: "node id (overrides Node.ID)"},
					&cli.StringFlag{Name: "conf-dir", Usage: "read config.toml, ext-prover.cfg and the token secret from this directory instead of the home"},
					&cli.BoolFlag{Name: "ext-prover", Usage: "start the prover children listed in ext-prover.cfg"},
					&cli.StringFlag{Name: "proxy", Usage: "run as a proxy node of the node at HOST:PORT: a raft non-voter of its cluster that follows every change in real time and serves it read-only (with --poster it is given deadlines too); --proxy=\"\" means the node whose home holds the config files (--conf-dir)"},
					&cli.BoolFlag{Name: "proxy-sector-indexer-off", Usage: "with --proxy: use the sector locations in this node's own home instead of the source's"},
					&cli.BoolFlag{Name: "poster", Usage: "prove the deadlines the cluster assigns to this node (needs --ext-prover and a chain)"},
					&cli.BoolFlag{Name: "miner", Usage: "compute WinningPoSt for sophon-miner: register every enabled miner of the store with each sophon-gateway (Gateway.API or --gateway-api) and answer its ComputeProof requests on the children (needs --ext-prover)"},
					&cli.StringSliceFlag{Name: "gateway-api", Usage: "sophon-gateway TOKEN:/ip4/HOST/tcp/PORT for --miner (repeat or separate with commas; overrides Gateway.API)"},
					&cli.StringFlag{Name: "chain-api", Usage: "full node FULLNODE_API_INFO string TOKEN:/ip4/HOST/tcp/PORT/http (overrides Chain.API)", EnvVars: []string{"FULLNODE_API_INFO"}},
					&cli.IntFlag{Name: "bootstrap-expect", Usage: "bootstrap a new cluster once this many voters have met through gossip (give the same N on each)"},
					&cli.StringSliceFlag{Name: "join", Usage: "gossip addresses HOST:PORT of members to join (retried until one answers)"},
					&cli.BoolFlag{Name: "non-voter", Usage: "join as a read replica that never votes"},
					&cli.DurationFlag{Name: "dead-server-cleanup", Usage: "remove a voter gossip has seen dead this long (never below quorum); 0 disables"},
				},
				Action: daemonRun,
			},
		},
	}
}

func home(c *cli.Context) (config.Home, error) {
	return config.NewHome(c.String("home"), c.String("conf-dir"))
}

func daemonInit(c *cli.Context) error {
	h, err := home(c)
	if err != nil {
		return err
	}
	opts := config.InitOptions{
		NodeID:          c.String("node-id"),
		Listen:          c.String("listen"),
		RaftAddr:        c.String("raft-addr"),
		GossipAddr:      c.String("gossip-addr"),
		ExtProverConfig: prover.DefaultConfigText,
	}
	if p := c.String("secrets"); p != "" {
		s, err := config.ReadSecretsFile(p)
		if err != nil {
			return err
		}
		opts.Secrets = &s
	}
	res, err := h.Init(opts)
	if err != nil {
		return err
	}
	for _, p := range res.Written {
		fmt.Fprintf(c.App.Writer, "wrote   %s\n", p)
	}
	for _, p := range res.Existing {
		fmt.Fprintf(c.App.Writer, "exists  %s (left unchanged)\n", p)
	}
	if len(res.Written) == 0 {
		fmt.Fprintf(c.App.Writer, "home %s was already initialised; nothing changed\n", h.Dir)
	}
	return nil
}

func daemonRun(c *cli.Context) error {
	h, err := home(c)
	if err != nil {
		return err
	}
	cfg, err := config.Load(h.ConfigPath())
	if err != nil {
		return err
	}
	override(&cfg.Node.Listen, c.String("listen"))
	override(&cfg.Node.RaftAddr, c.String("raft-addr"))
	override(&cfg.Gossip.Addr, c.String("gossip-addr"))
	override(&cfg.Node.ID, c.String("node-id"))
	if gws := splitList(c.StringSlice("gateway-api")); len(gws) > 0 {
		cfg.Gateway.API = gws
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config after flags: %w", err)
	}
	log, err := cliLogger(c)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, daemon.Options{
		Home:              h,
		Config:            cfg,
		Bootstrap:         c.Bool("bootstrap"),
		ExtProver:         c.Bool("ext-prover"),
		Poster:            c.Bool("poster"),
		Miner:             c.Bool("miner"),
		Proxy:             c.IsSet("proxy"),
		ProxySource:       c.String("proxy"),
		ProxyIndexerOff:   c.Bool("proxy-sector-indexer-off"),
		ChainAPI:          c.String("chain-api"),
		BootstrapExpect:   c.Int("bootstrap-expect"),
		Join:              splitList(c.StringSlice("join")),
		NonVoter:          c.Bool("non-voter"),
		DeadServerCleanup: c.Duration("dead-server-cleanup"),
		Flags: daemon.ExplicitFlags{
			NodeID: c.String("node-id"), Listen: c.String("listen"),
			RaftAddr: c.String("raft-addr"), GossipAddr: c.String("gossip-addr"),
		},
		Version: version,
		Log:     log,
	})
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// splitList accepts repeated flags and comma-separated values alike.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
