package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/rpc"
)

// Migration without an export step: the chain says which sectors a miner
// has (with their seal proof type, CommR and whether they were
// snap-upgraded), and the original manager (damocles-manager, formerly
// venus-sector-manager) says where each one's files are, through the same
// Venus.SectorIndexerFind its own proxy nodes and workers call.

// ChainSector is what the chain says about one of a miner's sectors.
type ChainSector struct {
	Number    uint64
	SealProof uint8
	CommR     [32]byte
	// Upgraded: the sector has a SectorKeyCID (snap deals); its live
	// files are the ones the original indexes as "upgrade".
	Upgraded bool
}

// Finder asks the original's sector indexer.
type Finder func(ctx context.Context, kind rpc.SectorIndexType, miner, number uint64) (rpc.SectorIndexLocation, error)

// ManagerFinder calls Venus.SectorIndexerFind on the original manager at
// url (HOST:PORT or http://HOST:PORT; the original serves go-jsonrpc over
// HTTP POST on /rpc/v0 as well as websockets). token may be empty: the
// original's API had none.
func ManagerFinder(url, token string) Finder {
	c := rpc.NewClient(url, token)
	return func(ctx context.Context, kind rpc.SectorIndexType, miner, number uint64) (rpc.SectorIndexLocation, error) {
		var res rpc.SectorIndexLocation
		err := c.Call(ctx, rpc.MethodVenusSectorIndexerFind, &res, kind, rpc.VenusSectorID{Miner: miner, Number: number})
		return res, err
	}
}

// FromManagerResult is what FromManager found.
type FromManagerResult struct {
	Locations []fsm.SectorLocation
	// Missing are on-chain sectors the manager's indexer does not know.
	Missing []uint64
	// Stores are the storage instance names the locations use.
	Stores []string
}

// FromManager builds one location per on-chain sector by asking find, with
// parallel requests in flight; progress is called with the number done.
// A failed call stops it (the manager is down or refuses the method); a
// sector the indexer does not have is listed in Missing.
func FromManager(ctx context.Context, miner uint64, sectors []ChainSector, find Finder, parallel int, progress func(done int)) (FromManagerResult, error) {
	if parallel <= 0 {
		return FromManagerResult{}, errors.New("parallel must be positive")
	}
	locs := make([]fsm.SectorLocation, len(sectors))
	found := make([]bool, len(sectors))
	err := forEach(ctx, len(sectors), parallel, func(ctx context.Context, i int) error {
		s := sectors[i]
		kind := rpc.SectorIndexNormal
		if s.Upgraded {
			kind = rpc.SectorIndexUpgrade
		}
		res, err := find(ctx, kind, miner, s.Number)
		if err != nil {
			return fmt.Errorf("ask the manager where sector %d of t0%d is (%s): %w", s.Number, miner, kind, err)
		}
		if res.Found {
			found[i] = true
			locs[i] = fsm.SectorLocation{
				SectorID:  fsm.SectorID{Miner: miner, Number: s.Number},
				Sealed:    res.Instance.SealedFile,
				Cache:     res.Instance.CacheDir,
				Upgraded:  s.Upgraded,
				SealProof: s.SealProof,
				CommR:     s.CommR,
			}
		}
		return nil
	}, progress)
	if err != nil {
		return FromManagerResult{}, err
	}
	var out FromManagerResult
	stores := map[string]bool{}
	for i, s := range sectors {
		if !found[i] {
			out.Missing = append(out.Missing, s.Number)
			continue
		}
		if locs[i].Sealed == "" || locs[i].Cache == "" {
			return FromManagerResult{}, fmt.Errorf("the manager says sector %d of t0%d is found but names no persist store (sealed %q, cache %q)", s.Number, miner, locs[i].Sealed, locs[i].Cache)
		}
		out.Locations = append(out.Locations, locs[i])
		stores[locs[i].Sealed], stores[locs[i].Cache] = true, true
	}
	for name := range stores {
		out.Stores = append(out.Stores, name)
	}
	slices.Sort(out.Stores)
	return out, nil
}

// MissingStores are the names in need that have no instance in have.
func MissingStores(need []string, have []fsm.StorageInstance) []string {
	known := map[string]bool{}
	for _, s := range have {
		known[s.Name] = true
	}
	var out []string
	for _, n := range need {
		if !known[n] {
			out = append(out, n)
		}
	}
	return out
}

// NumberList prints sector numbers compactly: "3, 7-9, 12".
func NumberList(ns []uint64, limit int) string {
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if ns[i] == ns[j] {
			parts = append(parts, fmt.Sprint(ns[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ns[i], ns[j]))
		}
		i = j + 1
	}
	if limit > 0 && len(parts) > limit {
		return strings.Join(parts[:limit], ", ") + fmt.Sprintf(" and %d more ranges", len(parts)-limit)
	}
	return strings.Join(parts, ", ")
}
