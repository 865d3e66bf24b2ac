package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/rpc"
)

// apiFlags are accepted by every command that talks to a running node.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", Usage: "node API address HOST:PORT (default: <home>/api)", EnvVars: []string{"VSM_API"}},
		&cli.StringFlag{Name: "token", Usage: "API token (default: <home>/token)", EnvVars: []string{"VSM_TOKEN"}},
	}
}

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}

// client connects to the node named by --api/--token, falling back to the
// files the local daemon writes in its home.
func client(c *cli.Context) (*rpc.Client, error) {
	h, err := home(c)
	if err != nil {
		return nil, err
	}
	addr := c.String("api")
	if addr == "" {
		b, err := os.ReadFile(h.APIPath())
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("no --api given and %s does not exist; is 'vsm daemon run' running with this --home?", h.APIPath())
			}
			return nil, err
		}
		addr = strings.TrimSpace(string(b))
	}
	token := c.String("token")
	if token == "" {
		b, err := os.ReadFile(h.TokenPath())
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	return rpc.NewClient(addr, token), nil
}

// callTimeout bounds one CLI request, so a command never hangs on a node
// that cannot answer (lost quorum, a partition).
const callTimeout = 2 * time.Minute

// call runs one RPC with the command's context.
func call(c *cli.Context, method string, result any, params ...any) error {
	return callWithin(c, callTimeout, method, result, params...)
}

// callWithin is call for a command whose request may take longer than
// callTimeout (it has its own --timeout).
func callWithin(c *cli.Context, timeout time.Duration, method string, result any, params ...any) error {
	cl, err := client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	return cl.Call(ctx, method, result, params...)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints aligned columns: a header row, then rows.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// withAPI adds the API flags to every leaf command below cmd.
func withAPI(cmds ...*cli.Command) []*cli.Command {
	for _, c := range cmds {
		if len(c.Subcommands) > 0 {
			withAPI(c.Subcommands...)
			continue
		}
		c.Flags = append(c.Flags, apiFlags()...)
	}
	return cmds
}
