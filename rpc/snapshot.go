package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
)

// SnapshotPath serves operator backups: GET saves, PUT restores. They are
// plain HTTP, not JSON-RPC, because a backup of a million sectors is tens
// of megabytes.
const SnapshotPath = "/v0/snapshot"

// backupUploadTimeout bounds a backup upload (PUT SnapshotPath).
const backupUploadTimeout = 30 * time.Minute

// SnapshotBackend is what backup and restore need from the member.
type SnapshotBackend interface {
	Backup(ctx context.Context, w io.Writer) (cluster.BackupMeta, error)
	Restore(ctx context.Context, r io.Reader) (cluster.BackupMeta, error)
	LeaderAPI() (string, error)
}

// SnapshotHandler needs an admin token for both directions.
func (m *Mux) SnapshotHandler(b SnapshotBackend) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		perm, err := m.callerPerm(r)
		if err != nil {
			http.Error(w, fmt.Sprintf("%v; pass 'Authorization: Bearer TOKEN' with an admin token", err), http.StatusUnauthorized)
			return
		}
		if perm < PermAdmin {
			http.Error(w, "backups need an admin token", http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodGet:
			// No body to read: a backup stream may outlast the server's
			// read deadline, which would otherwise cancel it.
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
			w.Header().Set("Content-Type", "application/octet-stream")
			// Errors after the first byte cannot change the status; the
			// client verifies the checksum, so a cut stream is detected.
			if _, err := b.Backup(r.Context(), w); err != nil {
				http.Error(w, err.Error(), statusOf(err))
			}
		case http.MethodPut:
			// A backup of millions of sectors may take longer to upload
			// than the server's read timeout allows an ordinary request;
			// only an admin gets here.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(backupUploadTimeout))
			restore(w, r, b)
		default:
			w.Header().Set("Allow", "GET, PUT")
			http.Error(w, "GET saves a backup, PUT restores one", http.StatusMethodNotAllowed)
		}
	})
}

func restore(w http.ResponseWriter, r *http.Request, b SnapshotBackend) {
	meta, err := b.Restore(r.Context(), http.MaxBytesReader(w, r.Body, 8<<30))
	var nl *cluster.NotLeaderError
	if errors.As(err, &nl) {
		addr, lerr := b.LeaderAPI()
		if lerr != nil {
			http.Error(w, lerr.Error(), http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "http://"+addr+SnapshotPath, http.StatusTemporaryRedirect)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(meta)
}

func statusOf(err error) int {
	var nl *cluster.NotLeaderError
	switch {
	case errors.Is(err, fsm.ErrRejected):
		return http.StatusBadRequest
	case errors.As(err, &nl):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
