package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/rpc"
	"github.com/vsm-project/vsm/web"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "cluster membership and state (admin token)",
		Subcommands: append(withAPI(
			&cli.Command{Name: "status", Usage: "this node's raft state", Flags: []cli.Flag{jsonFlag}, Action: clusterStatus},
			&cli.Command{Name: "peers", Usage: "the raft configuration and each peer's progress", Flags: []cli.Flag{jsonFlag}, Action: clusterPeers},
			&cli.Command{Name: "members", Usage: "the gossip view: state and capacity of every member", Flags: []cli.Flag{jsonFlag}, Action: clusterMembers},
			&cli.Command{Name: "join", Usage: "make this node join the cluster at a member's gossip address", ArgsUsage: "HOST:PORT...", Action: clusterJoin},
			&cli.Command{Name: "leave", Usage: "leave the cluster gracefully (a leader hands over first) and stop this node", Action: clusterLeave},
			&cli.Command{Name: "remove-peer", Usage: "remove a server from the raft configuration (the leader too: it hands over first); refused when the voters left could not elect a leader", ArgsUsage: "ID", Flags: []cli.Flag{
				&cli.BoolFlag{Name: "force", Usage: "remove even if the voters left, counting only live ones, would have no quorum"},
			}, Action: clusterRemovePeer},
			&cli.Command{Name: "transfer-leader", Usage: "hand leadership to another voter", Flags: []cli.Flag{&cli.StringFlag{Name: "to", Usage: "target node id (default: any up-to-date voter)"}}, Action: clusterTransfer},
			&cli.Command{Name: "drain", Usage: "stop giving this node deadlines; its deadlines move elsewhere", Action: clusterDrain(true)},
			&cli.Command{Name: "undrain", Usage: "let this node take deadlines again", Action: clusterDrain(false)},
			clusterScheduleCommand(),
		), snapshotCommand(), &cli.Command{
			Name:  "peers-json",
			Usage: "outage recovery: with this node STOPPED, write raft/peers.json keeping only the surviving servers (see docs/runbooks/outage.md)",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "keep", Usage: "id of a server to keep (repeat, or comma-separate); the others are dropped", Required: true},
			},
			Action: peersJSON,
		}, &cli.Command{
			Name:  "forget-state",
			Usage: "damaged or lost raft data: with this node STOPPED, move raft/ aside so the node starts empty (remove it on a healthy member first); see docs/runbooks/raft-data.md",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "keep-snapshot", Usage: "single-voter node only: restart from the newest valid snapshot, accepting the loss of the writes after it"},
			},
			Action: forgetState,
		}, &cli.Command{
			Name:  "secrets",
			Usage: "the secrets every member shares",
			Subcommands: []*cli.Command{{
				Name:      "export",
				Usage:     "write the token secret and gossip key to FILE (mode 0600) for 'vsm daemon init --secrets FILE' on a new member",
				ArgsUsage: "FILE",
				Action:    secretsExport,
			}},
		}),
	}
}

func clusterStatus(c *cli.Context) error {
	var st cluster.Status
	if err := call(c, rpc.MethodStatus, &st); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, st)
	}
	return table(c.App.Writer, []string{"NODE", "STATE", "LEADER", "TERM", "COMMIT", "APPLIED", "CLUSTER"},
		[][]string{{st.NodeID, st.State, st.LeaderID, u(st.Term), u(st.CommitIndex), u(st.AppliedIndex), st.ClusterID}})
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }

func clusterPeers(c *cli.Context) error {
	var peers []cluster.Peer
	if err := call(c, rpc.MethodClusterPeers, &peers); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, peers)
	}
	rows := make([][]string, len(peers))
	for i, p := range peers {
		role := "non-voter"
		if p.Voter {
			role = "voter"
		}
		if p.Leader {
			role += " (leader)"
		}
		state, contact, commit, applied := "?", "-", "-", "-"
		if p.Status != nil {
			state, commit, applied = p.Status.State, u(p.Status.CommitIndex), u(p.Status.AppliedIndex)
			if !p.Leader {
				contact = (time.Duration(p.Status.LastContactMS) * time.Millisecond).String()
			}
		} else if p.Error != "" {
			state = "unreachable"
		}
		rows[i] = []string{p.ID, p.Address, role, state, contact, commit, applied}
	}
	return table(c.App.Writer, []string{"ID", "RAFT ADDRESS", "ROLE", "STATE", "LAST CONTACT", "COMMIT", "APPLIED"}, rows)
}

func clusterMembers(c *cli.Context) error {
	var ms []cluster.Member
	if err := call(c, rpc.MethodClusterMembers, &ms); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, ms)
	}
	rows := make([][]string, len(ms))
	for i, m := range ms {
		role := "member"
		switch {
		case m.Proxy:
			role = "proxy"
		case m.NonVoter:
			role = "non-voter"
		}
		rows[i] = []string{m.ID, m.State, role, m.Gossip, m.RPC, "-", "-", "-", "-", strconv.FormatBool(m.Draining)}
		if m.State == "alive" || m.State == "suspect" {
			// A dead or left member's last gossip is not its capacity now.
			rows[i][5] = strconv.Itoa(m.Capacity.GPUs)
			rows[i][6] = fmt.Sprintf("%d/%d", m.Capacity.ChildrenReady, m.Capacity.Children)
			rows[i][7] = fmt.Sprintf("%d/%d", m.Capacity.Slots-m.Capacity.BusySlots, m.Capacity.Slots)
			rows[i][8] = web.Seconds(m.Capacity.SecondsPerPartition)
		}
	}
	return table(c.App.Writer, []string{"ID", "STATE", "ROLE", "GOSSIP", "API", "GPUS", "CHILDREN READY", "FREE SLOTS", "S/PARTITION", "DRAINING"}, rows)
}

func clusterJoin(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("give a member's gossip address HOST:PORT")
	}
	var res map[string]int
	if err := call(c, rpc.MethodClusterJoin, &res, c.Args().Slice()); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "contacted %d members; the leader adds this node as a non-voter and promotes it once caught up\n", res["contacted"])
	return nil
}

func clusterLeave(c *cli.Context) error {
	if err := call(c, rpc.MethodClusterLeave, nil); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, "left the cluster; the node is shutting down")
	return nil
}

func clusterRemovePeer(c *cli.Context) error {
	id, err := nameArg(c)
	if err != nil {
		return err
	}
	if err := call(c, rpc.MethodClusterRemovePeer, nil, id, c.Bool("force")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "removed %s from the raft configuration\n", id)
	return nil
}

func clusterTransfer(c *cli.Context) error {
	if err := call(c, rpc.MethodClusterTransferLeader, nil, c.String("to")); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, "leadership transferred")
	return nil
}

func clusterDrain(on bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := call(c, rpc.MethodClusterDrain, nil, on); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "draining: %v\n", on)
		return nil
	}
}

func secretsExport(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("give the FILE to write")
	}
	h, err := home(c)
	if err != nil {
		return err
	}
	s, err := h.ExportSecrets()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := c.Args().First()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write secrets: %w (it is never overwritten; remove it first)", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (mode 0600); start other members with 'vsm daemon init --secrets %s'\n", path, path)
	return nil
}

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "operator backups of the replicated state",
		Subcommands: withAPI(
			&cli.Command{
				Name:      "save",
				Usage:     "write a consistent backup to FILE (verified before it is kept)",
				ArgsUsage: "FILE",
				Action:    snapshotSave,
			},
			&cli.Command{
				Name:      "restore",
				Usage:     "replace the cluster's state with a backup of this cluster, through raft",
				ArgsUsage: "FILE",
				Action:    snapshotRestore,
			},
		),
	}
}

func snapshotSave(c *cli.Context) error {
	path, err := nameArg(c)
	if err != nil {
		return err
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := cl.SaveSnapshot(c.Context, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	r, err := os.Open(tmp)
	if err != nil {
		return err
	}
	meta, _, err := cluster.ReadBackup(r)
	r.Close()
	if err != nil {
		return fmt.Errorf("the saved backup does not verify: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "saved %s: cluster %s, %d miners, %d storage instances, %d sectors, raft index %d\n",
		path, meta.ClusterID, meta.Miners, meta.Storage, meta.Sectors, meta.AppliedIndex)
	return nil
}

func snapshotRestore(c *cli.Context) error {
	path, err := nameArg(c)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	meta, _, err := cluster.ReadBackup(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was restored)", path, err)
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	if _, err := cl.RestoreSnapshot(c.Context, b); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "restored %s (taken %s from %s): %d miners, %d sectors; every member installs it through raft\n",
		path, meta.Created.Format(time.RFC3339), meta.Node, meta.Miners, meta.Sectors)
	return nil
}

func peersJSON(c *cli.Context) error {
	h, err := home(c)
	if err != nil {
		return err
	}
	path, peers, err := cluster.WritePeersJSON(h.RaftDir(), splitList(c.StringSlice("keep")))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s with %d servers:\n", path, len(peers))
	b, _ := json.MarshalIndent(peers, "", "  ")
	fmt.Fprintln(c.App.Writer, string(b))
	fmt.Fprintln(c.App.Writer, "copy the same file into the raft directory of every kept server, then start them; each applies it once")
	return nil
}

func forgetState(c *cli.Context) error {
	h, err := home(c)
	if err != nil {
		return err
	}
	res, err := cluster.ForgetState(h.RaftDir(), c.Bool("keep-snapshot"), func() string { return time.Now().UTC().Format("20060102T150405Z") })
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "moved the old raft data to %s (nothing was deleted)\n", res.MovedTo)
	if res.Kept != nil {
		fmt.Fprintf(c.App.Writer, "kept snapshot %s (index %d); start the node with its usual command line: it restarts from that snapshot, without the writes after index %d\n", res.Kept.ID, res.Kept.Index, res.Kept.Index)
		return nil
	}
	fmt.Fprintln(c.App.Writer, "the node now starts empty. If it belonged to a cluster, make sure it was removed first ('vsm cluster remove-peer ID' on a healthy member),")
	fmt.Fprintln(c.App.Writer, "then start it with --join: it joins as a non-voter, copies the state from the leader and is promoted once caught up.")
	fmt.Fprintln(c.App.Writer, "A single-node store starts empty (same cluster id) with --bootstrap: restore your latest backup with 'vsm cluster snapshot restore FILE'.")
	return nil
}
