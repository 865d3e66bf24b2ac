package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/rpc"
)

func authCommand() *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "API tokens",
		Subcommands: []*cli.Command{{
			Name:  "create-token",
			Usage: "print a new API token signed with this home's secret (valid on every member sharing it)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "perm", Usage: "read, write or admin", Required: true},
				&cli.StringFlag{Name: "conf-dir", Usage: "read the token secret from this directory instead of the home"},
			},
			Action: func(c *cli.Context) error {
				perm, err := rpc.ParsePerm(c.String("perm"))
				if err != nil {
					return err
				}
				h, err := home(c)
				if err != nil {
					return err
				}
				secret, err := h.JWTSecret()
				if err != nil {
					return err
				}
				a, err := rpc.NewAuth(secret)
				if err != nil {
					return err
				}
				tok, err := a.NewToken(perm)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, tok)
				return nil
			},
		}},
	}
}
