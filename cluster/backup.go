package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vsm-project/vsm/fsm"
)

// backupMagic starts an operator backup: a header line of JSON metadata,
// then the FSM snapshot stream (which carries its own CRC-32C).
const backupMagic = "VSMBACKUP1\n"

// BackupMeta is the header of an operator backup.
type BackupMeta struct {
	ClusterID    string    `json:"cluster_id"`
	Node         string    `json:"node"`
	Created      time.Time `json:"created"`
	AppliedIndex uint64    `json:"applied_index"`
	Term         uint64    `json:"term"`
	fsm.Stats
}

// Backup writes a consistent backup: it first makes the local replica
// linearizable (read index), so the backup holds every write acknowledged
// before it started.
func (s *Server) Backup(ctx context.Context, w io.Writer) (BackupMeta, error) {
	if err := s.ConsistentRead(ctx); err != nil {
		return BackupMeta{}, fmt.Errorf("backup: %w", err)
	}
	var snap bytes.Buffer
	if _, err := s.FSM().WriteTo(&snap); err != nil {
		return BackupMeta{}, fmt.Errorf("backup: %w", err)
	}
	st := s.node.Status()
	meta := BackupMeta{ClusterID: st.ClusterID, Node: st.NodeID, Created: time.Now().UTC(), AppliedIndex: st.AppliedIndex, Term: st.Term, Stats: s.FSM().Stats()}
	hdr, err := json.Marshal(meta)
	if err != nil {
		return BackupMeta{}, err
	}
	if _, err := io.WriteString(w, backupMagic+string(hdr)+"\n"); err != nil {
		return BackupMeta{}, fmt.Errorf("backup: %w", err)
	}
	if _, err := snap.WriteTo(w); err != nil {
		return BackupMeta{}, fmt.Errorf("backup: %w", err)
	}
	return meta, nil
}

// ReadBackup parses and fully verifies a backup, returning its header and
// the snapshot bytes.
func ReadBackup(r io.Reader) (BackupMeta, []byte, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return BackupMeta{}, nil, errors.New("not a vsm backup (bad header); make one with 'vsm cluster snapshot save'")
	}
	line, err := br.ReadBytes('\n')
	if err != nil {
		return BackupMeta{}, nil, fmt.Errorf("backup header: %w", err)
	}
	var meta BackupMeta
	if err := json.Unmarshal(line, &meta); err != nil {
		return BackupMeta{}, nil, fmt.Errorf("backup header: %w", err)
	}
	snap, err := io.ReadAll(br)
	if err != nil {
		return BackupMeta{}, nil, fmt.Errorf("read backup: %w", err)
	}
	info, err := fsm.VerifySnapshot(bytes.NewReader(snap))
	if err != nil {
		return BackupMeta{}, nil, fmt.Errorf("backup is damaged: %w", err)
	}
	if info.ClusterID != meta.ClusterID || info.Stats != meta.Stats {
		return BackupMeta{}, nil, errors.New("backup header does not match its contents; the file was edited or damaged")
	}
	return meta, snap, nil
}

// Restore replaces the replicated state with a backup, through raft, so
// every member installs it. Only the leader can do it; the backup must be
// from this cluster (restoring another cluster's data would make every
// member refuse its own home at the next start).
func (s *Server) Restore(ctx context.Context, r io.Reader) (BackupMeta, error) {
	meta, snap, err := ReadBackup(r)
	if err != nil {
		return BackupMeta{}, fmt.Errorf("%w: %v", fsm.ErrRejected, err)
	}
	if ours := s.FSM().ClusterID(); meta.ClusterID != ours {
		return BackupMeta{}, fmt.Errorf("%w: the backup is from cluster %s, this is cluster %s", fsm.ErrRejected, meta.ClusterID, ours)
	}
	if !s.node.IsLeader() {
		id, addr := s.node.Leader()
		return BackupMeta{}, &NotLeaderError{LeaderID: id, LeaderAddr: addr}
	}
	rm := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(snap))}
	if err := s.node.raft.Restore(rm, bytes.NewReader(snap), timeoutFrom(ctx, 5*time.Minute)); err != nil {
		return BackupMeta{}, fmt.Errorf("raft restore: %w", err)
	}
	return meta, nil
}

// LeaderAPI is the leader's API address, for redirecting a restore.
func (s *Server) LeaderAPI() (string, error) { return s.leaderRPC() }
