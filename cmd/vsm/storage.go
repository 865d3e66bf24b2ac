package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/rpc"
)

func storageCommand() *cli.Command {
	return &cli.Command{
		Name:  "storage",
		Usage: "manage storage instances (persist stores holding sealed files and caches)",
		Subcommands: withAPI(
			&cli.Command{
				Name:      "add",
				Usage:     "add a storage instance (or change its default path)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "path", Usage: "default mount path; a node may override it with StoragePaths in its config", Required: true},
					&cli.BoolFlag{Name: "read-only", Usage: "the store is mounted read-only"},
				},
				Action: storageAdd,
			},
			&cli.Command{Name: "list", Usage: "list storage instances", Flags: []cli.Flag{jsonFlag}, Action: storageList},
			&cli.Command{Name: "remove", Usage: "remove a storage instance no sector refers to", ArgsUsage: "NAME", Action: storageRemove},
		),
	}
}

func nameArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", fmt.Errorf("want one NAME argument, got %d", c.NArg())
	}
	return c.Args().First(), nil
}

func storageAdd(c *cli.Context) error {
	name, err := nameArg(c)
	if err != nil {
		return err
	}
	path := c.String("path")
	if err := rpc.CheckName("storage name", name); err != nil {
		return err
	}
	if err := rpc.CheckPath(path); err != nil {
		return fmt.Errorf("--path: %w", err)
	}
	in := fsm.StorageInstance{Name: name, Path: path, ReadOnly: c.Bool("read-only")}
	if err := call(c, rpc.MethodStorageAdd, nil, in); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "storage %s at %s\n", name, path)
	return nil
}

func storageList(c *cli.Context) error {
	var ss []fsm.StorageSummary
	if err := call(c, rpc.MethodStorageList, &ss); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, ss)
	}
	rows := make([][]string, len(ss))
	for i, s := range ss {
		rows[i] = []string{s.Name, s.Path, strconv.FormatBool(s.ReadOnly), strconv.FormatUint(s.References, 10)}
	}
	return table(c.App.Writer, []string{"NAME", "PATH", "READ-ONLY", "REFERENCES"}, rows)
}

func storageRemove(c *cli.Context) error {
	name, err := nameArg(c)
	if err != nil {
		return err
	}
	if err := call(c, rpc.MethodStorageRemove, nil, name); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "storage %s removed\n", name)
	return nil
}
