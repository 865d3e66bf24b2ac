package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
)

// Store is what the VSM method set needs from the node: the local FSM for
// reads and the cluster for writes and consistent reads.
type Store interface {
	FSM() *fsm.FSM
	// ReadReady fails while the local replica is still replaying its log.
	ReadReady() error
	Apply(ctx context.Context, c fsm.Command) (int, error)
	ConsistentRead(ctx context.Context) error
	Status() cluster.Status
	SnapshotNow(ctx context.Context) error
}

// Version is what VSM.Version returns.
type Version struct {
	Version    string `json:"version"`
	APIVersion int    `json:"api_version"`
}

// APIVersion changes when a method's params or result change shape.
const APIVersion = 1

// MaxBatch bounds locations per put/delete call, so one request cannot
// become a raft entry too large to replicate promptly.
const MaxBatch = 50_000

// RegisterVSM adds the VSM.* method set. Method names are VSM.<Thing><Verb>;
// docs/api.md lists each with its params and permission.
func RegisterVSM(m *Mux, s Store, version string) {
	a := &api{s: s, version: version}
	m.Register(MethodVersion, PermRead, a.getVersion)
	m.Register(MethodStatus, PermRead, a.status)
	m.Register(MethodMinerAdd, PermWrite, a.minerAdd)
	m.Register(MethodMinerGet, PermRead, a.read(a.minerGet))
	m.Register(MethodMinerList, PermRead, a.read(a.minerList))
	m.Register(MethodMinerRemove, PermWrite, a.minerRemove)
	m.Register(MethodStorageAdd, PermWrite, a.storageAdd)
	m.Register(MethodStorageList, PermRead, a.read(a.storageList))
	m.Register(MethodStorageRemove, PermWrite, a.storageRemove)
	m.Register(MethodSectorLocationPut, PermWrite, a.locationPut)
	m.Register(MethodSectorLocationGet, PermRead, a.read(a.locationGet))
	m.Register(MethodSectorLocationList, PermRead, a.read(a.locationList))
	m.Register(MethodSectorLocationCount, PermRead, a.read(a.locationCount))
	m.Register(MethodSectorLocationDelete, PermWrite, a.locationDelete)
	m.Register(MethodSnapshotNow, PermAdmin, a.snapshotNow)
}

type api struct {
	s       Store
	version string
}

// storeErr maps cluster and FSM errors to JSON-RPC codes clients can act on.
func storeErr(err error) error {
	var nl *cluster.NotLeaderError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fsm.ErrRejected):
		return Errorf(CodeRejected, "%v", err)
	case errors.As(err, &nl):
		return Errorf(CodeNotLeader, "%v", err)
	case errors.Is(err, cluster.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, cluster.ErrCatchingUp):
		return Errorf(CodeUnavailable, "%v; retry", err)
	}
	return err
}

// read refuses local reads until the replica has replayed its log, so a
// restarted node never answers from a state older than it acknowledged.
func (a *api) read(h Handler) Handler {
	return func(ctx context.Context, p []json.RawMessage) (any, error) {
		if err := a.s.ReadReady(); err != nil {
			return nil, storeErr(err)
		}
		return h(ctx, p)
	}
}

func (a *api) apply(ctx context.Context, c fsm.Command) (any, error) {
	n, err := a.s.Apply(ctx, c)
	if err != nil {
		return nil, storeErr(err)
	}
	return Changed{Changed: n}, nil
}

func (a *api) getVersion(context.Context, []json.RawMessage) (any, error) {
	return Version{Version: a.version, APIVersion: APIVersion}, nil
}

func (a *api) status(context.Context, []json.RawMessage) (any, error) {
	return a.s.Status(), nil
}

func (a *api) minerAdd(ctx context.Context, p []json.RawMessage) (any, error) {
	var m fsm.Miner
	if err := Params(p, 0, &m); err != nil {
		return nil, err
	}
	return a.apply(ctx, fsm.PutMiner{Miner: m})
}

func (a *api) minerGet(_ context.Context, p []json.RawMessage) (any, error) {
	var id uint64
	if err := Params(p, 0, &id); err != nil {
		return nil, err
	}
	m, ok := a.s.FSM().Miner(id)
	if !ok {
		return nil, Errorf(CodeNotFound, "miner t0%d is not known; add it with 'vsm miner add'", id)
	}
	return fsm.MinerSummary{Miner: m, Sectors: a.s.FSM().SectorCount(id)}, nil
}

func (a *api) minerList(context.Context, []json.RawMessage) (any, error) {
	return a.s.FSM().Miners(), nil
}

func (a *api) minerRemove(ctx context.Context, p []json.RawMessage) (any, error) {
	var id uint64
	var purge bool
	if err := Params(p, 1, &id, &purge); err != nil {
		return nil, err
	}
	return a.apply(ctx, fsm.RemoveMiner{ID: id, Purge: purge})
}

func (a *api) storageAdd(ctx context.Context, p []json.RawMessage) (any, error) {
	var in fsm.StorageInstance
	if err := Params(p, 0, &in); err != nil {
		return nil, err
	}
	if err := checkStorage(in); err != nil {
		return nil, Errorf(CodeInvalidParams, "param 1: %v", err)
	}
	return a.apply(ctx, fsm.PutStorage{Instance: in})
}

func (a *api) storageList(context.Context, []json.RawMessage) (any, error) {
	return a.s.FSM().StorageInstances(), nil
}

func (a *api) storageRemove(ctx context.Context, p []json.RawMessage) (any, error) {
	var name string
	if err := Params(p, 0, &name); err != nil {
		return nil, err
	}
	return a.apply(ctx, fsm.RemoveStorage{Name: name})
}

func (a *api) locationPut(ctx context.Context, p []json.RawMessage) (any, error) {
	var locs []fsm.SectorLocation
	if err := Params(p, 0, &locs); err != nil {
		return nil, err
	}
	if len(locs) > MaxBatch {
		return nil, Errorf(CodeInvalidParams, "%d locations in one call; send at most %d per call", len(locs), MaxBatch)
	}
	for i, l := range locs {
		if err := CheckSector(l.SectorID); err != nil {
			return nil, Errorf(CodeInvalidParams, "location %d (%s): %v; nothing was stored", i+1, l.SectorID, err)
		}
		if m, ok := a.s.FSM().Miner(l.SectorID.Miner); ok {
			if err := CheckSealProof(l, m.SectorSize); err != nil {
				return nil, Errorf(CodeInvalidParams, "location %d (%s): %v; nothing was stored", i+1, l.SectorID, err)
			}
		}
	}
	return a.apply(ctx, fsm.PutLocations{Locations: locs})
}

func (a *api) locationGet(ctx context.Context, p []json.RawMessage) (any, error) {
	var id fsm.SectorID
	var consistent bool
	if err := Params(p, 1, &id, &consistent); err != nil {
		return nil, err
	}
	if consistent {
		if err := a.s.ConsistentRead(ctx); err != nil {
			return nil, storeErr(err)
		}
	}
	l, ok := a.s.FSM().Location(id)
	if !ok {
		return nil, Errorf(CodeNotFound, "no location for sector %s", id)
	}
	return l, nil
}

func (a *api) locationList(_ context.Context, p []json.RawMessage) (any, error) {
	var miner, from uint64
	var limit int
	if err := Params(p, 2, &miner, &from, &limit); err != nil {
		return nil, err
	}
	if _, ok := a.s.FSM().Miner(miner); !ok {
		return nil, Errorf(CodeNotFound, "miner t0%d is not known", miner)
	}
	locs := a.s.FSM().Locations(miner, from, limit)
	if locs == nil {
		locs = []fsm.SectorLocation{}
	}
	return locs, nil
}

func (a *api) locationCount(_ context.Context, p []json.RawMessage) (any, error) {
	var miner uint64
	if err := Params(p, 0, &miner); err != nil {
		return nil, err
	}
	if _, ok := a.s.FSM().Miner(miner); !ok {
		return nil, Errorf(CodeNotFound, "miner t0%d is not known", miner)
	}
	return a.s.FSM().SectorCount(miner), nil
}

func (a *api) locationDelete(ctx context.Context, p []json.RawMessage) (any, error) {
	var ids []fsm.SectorID
	if err := Params(p, 0, &ids); err != nil {
		return nil, err
	}
	if len(ids) > MaxBatch {
		return nil, Errorf(CodeInvalidParams, "%d sectors in one call; send at most %d per call", len(ids), MaxBatch)
	}
	for i, id := range ids {
		if err := CheckSector(id); err != nil {
			return nil, Errorf(CodeInvalidParams, "sector %d: %v; nothing was deleted", i+1, err)
		}
	}
	return a.apply(ctx, fsm.DeleteLocations{IDs: ids})
}

func (a *api) snapshotNow(ctx context.Context, _ []json.RawMessage) (any, error) {
	if err := a.s.SnapshotNow(ctx); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return a.s.Status(), nil
}
