package rpc

import (
	"context"
	"encoding/json"

	"github.com/vsm-project/vsm/fsm"
)

// The original's sector-indexer read, so that a venus-sector-manager or
// damocles-manager proxy node, or a worker, can use a vsm member as its
// source (they call it through go-jsonrpc with the "Venus" namespace).
// The shapes are damocles-manager's core.SectorIndexLocation,
// core.SectorAccessStores and abi.SectorID, field names included.

// SectorIndexType is the original's index kind.
type SectorIndexType string

const (
	// SectorIndexNormal: the sector's sealed replica and cache.
	SectorIndexNormal SectorIndexType = "normal"
	// SectorIndexUpgrade: a snap-upgraded sector's update/ and
	// update-cache/ files.
	SectorIndexUpgrade SectorIndexType = "upgrade"
)

// VenusSectorID is abi.SectorID as it appears on the original's wire.
type VenusSectorID struct {
	Miner  uint64
	Number uint64
}

// SectorAccessStores names the storage instances (the original's persist
// stores) holding a sector's files.
type SectorAccessStores struct {
	SealedFile string
	CacheDir   string
}

// SectorIndexLocation is Venus.SectorIndexerFind's reply.
type SectorIndexLocation struct {
	Found    bool
	Instance SectorAccessStores
}

// RegisterVenus adds the original's methods vsm serves.
func RegisterVenus(m *Mux, s Store) {
	v := &venusAPI{s: s}
	m.Register(MethodVenusSectorIndexerFind, PermRead, v.sectorIndexerFind)
}

type venusAPI struct{ s Store }

// sectorIndexerFind answers as the original's indexer does: "normal" finds
// any stored location; "upgrade" only a snap-upgraded one (vsm keeps one
// location per sector, and an upgraded sector's live files are the
// updated ones). Not found is {Found: false}, not an error.
func (v *venusAPI) sectorIndexerFind(_ context.Context, p []json.RawMessage) (any, error) {
	var kind SectorIndexType
	var sid VenusSectorID
	if err := Params(p, 0, &kind, &sid); err != nil {
		return nil, err
	}
	if kind != SectorIndexNormal && kind != SectorIndexUpgrade {
		return nil, Errorf(CodeInvalidParams, "sector indexer of type %q is not supported: want %q or %q", kind, SectorIndexNormal, SectorIndexUpgrade)
	}
	if err := v.s.ReadReady(); err != nil {
		return nil, storeErr(err)
	}
	loc, ok := v.s.FSM().Location(fsm.SectorID{Miner: sid.Miner, Number: sid.Number})
	if !ok || (kind == SectorIndexUpgrade && !loc.Upgraded) {
		return SectorIndexLocation{}, nil
	}
	return SectorIndexLocation{Found: true, Instance: SectorAccessStores{SealedFile: loc.Sealed, CacheDir: loc.Cache}}, nil
}
