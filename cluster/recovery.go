package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/logging"
)

// PeersJSONFile is raft's manual recovery file, read at start from the
// raft directory. See docs/runbooks/outage.md.
const PeersJSONFile = "peers.json"

// PeerEntry is one server in peers.json (raft's version 3 format).
type PeerEntry struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

// LastConfiguration reads, with the node stopped, the raft configuration
// the node last knew from its own log and snapshots.
func LastConfiguration(dir string) (raft.Configuration, error) {
	path := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(path); err != nil {
		return raft.Configuration{}, fmt.Errorf("no raft data at %s: %w", path, err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("open %s (stop the node first): %w", path, err)
	}
	defer store.Close()
	// raft.db is locked now, so the node is stopped and its WAL free.
	var logs raft.LogStore = store
	var stable raft.StableStore = store
	mark, err := getUint64(store, logStoreKey)
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("read %s: %w", path, err)
	}
	if mark != 0 {
		if err := checkMarkedWAL(dir); err != nil {
			return raft.Configuration{}, err
		}
		w, err := openWAL(filepath.Join(dir, walDir), logging.HCLog(zap.NewNop()))
		if err != nil {
			return raft.Configuration{}, fmt.Errorf("open the raft log in %s: %w", filepath.Join(dir, walDir), err)
		}
		defer w.Close()
		logs, stable = w, prefixedStable{store}
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logging.HCLog(zap.NewNop()))
	if err != nil {
		return raft.Configuration{}, err
	}
	_, trans := raft.NewInmemTransport("")
	conf := raft.DefaultConfig()
	conf.LocalID = "offline-reader"
	conf.Logger = logging.HCLog(zap.NewNop())
	return raft.GetConfiguration(conf, fsm.New(nil), logs, stable, snaps, trans)
}

// WritePeersJSON writes peers.json for an outage recovery, keeping only
// the listed servers of the last known configuration. It refuses ids the
// node never knew, so a typo cannot invent a member.
func WritePeersJSON(dir string, keep []string) (string, []PeerEntry, error) {
	if len(keep) == 0 {
		return "", nil, errors.New("name the surviving servers to keep (--keep ID, repeatable)")
	}
	last, err := LastConfiguration(dir)
	if err != nil {
		return "", nil, err
	}
	var out []PeerEntry
	for _, id := range keep {
		i := slices.IndexFunc(last.Servers, func(s raft.Server) bool { return string(s.ID) == id })
		if i < 0 {
			var known []string
			for _, s := range last.Servers {
				known = append(known, string(s.ID))
			}
			return "", nil, fmt.Errorf("%s is not in this node's last configuration %v", id, known)
		}
		s := last.Servers[i]
		out = append(out, PeerEntry{ID: string(s.ID), Address: string(s.Address), NonVoter: s.Suffrage != raft.Voter})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, PeersJSONFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", nil, err
	}
	return path, out, nil
}

// recoverFromPeersJSON applies peers.json if present, before raft starts,
// and renames it so a restart does not apply it again.
func (n *Node) recoverFromPeersJSON(rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) error {
	path := filepath.Join(n.cfg.Dir, PeersJSONFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("%s: %w; fix or remove it", path, err)
	}
	n.log.Warn("recovering raft from peers.json: the configuration is replaced by the file's")
	if err := raft.RecoverCluster(rc, n.fsm, logs, stable, snaps, trans, conf); err != nil {
		return fmt.Errorf("recover from %s: %w", path, err)
	}
	// RecoverCluster used this FSM to replay the log; start raft on a
	// fresh one, which restores from the snapshot RecoverCluster took.
	n.fsm = newTrackedFSM(fsm.New(n.onFatal))
	if err := os.Rename(path, path+".applied"); err != nil {
		return fmt.Errorf("recovery done but %s could not be renamed; remove it before the next start: %w", path, err)
	}
	return nil
}
