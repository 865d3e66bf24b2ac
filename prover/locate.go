package prover

import (
	"fmt"
	"path/filepath"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// LocationStore is the part of the replicated store that sector paths
// resolve from. *fsm.FSM implements it; reads are local.
type LocationStore interface {
	Location(id fsm.SectorID) (fsm.SectorLocation, bool)
	Storage(name string) (fsm.StorageInstance, bool)
}

// Locator resolves sector locations to absolute local paths: each storage
// instance's path is this node's StoragePaths override, else the instance's
// default path, and the files inside follow the Lotus layout (update/ and
// update-cache/ for upgraded sectors). It is used by proving check, the
// deadline runner and proving compute alike.
type Locator struct {
	Store LocationStore
	// Local maps storage instance names to this node's mount points.
	Local map[string]string
}

// InstanceRoot is where this node mounts a storage instance, or a reason
// why it cannot be used.
func (l Locator) InstanceRoot(name string) (string, string) {
	if p, ok := l.Local[name]; ok && p != "" {
		return p, ""
	}
	in, ok := l.Store.Storage(name)
	if !ok {
		return "", fmt.Sprintf("storage instance %q is not known to the store", name)
	}
	if !filepath.IsAbs(in.Path) {
		return "", fmt.Sprintf("storage instance %q has path %q, which is not absolute; set StoragePaths.%s in this node's config", name, in.Path, name)
	}
	return in.Path, ""
}

// Replica resolves one stored location for a miner proving with post. A
// sector that cannot be proven here gives a reason instead of a replica.
func (l Locator) Replica(loc fsm.SectorLocation, post sectorfile.PoStProof) (Replica, string) {
	sealedRoot, why := l.InstanceRoot(loc.Sealed)
	if why != "" {
		return Replica{}, "sealed file: " + why
	}
	cacheRoot, why := l.InstanceRoot(loc.Cache)
	if why != "" {
		return Replica{}, "cache directory: " + why
	}
	if loc.SealProof != 0 {
		if why := SealMismatch(loc.SealProof, post); why != "" {
			return Replica{}, why
		}
	}
	sealed := sectorfile.LayoutPaths(sealedRoot, loc.Miner, loc.Number, loc.Upgraded)
	cache := sectorfile.LayoutPaths(cacheRoot, loc.Miner, loc.Number, loc.Upgraded)
	return Replica{SectorID: loc.Number, CommR: Bytes32(loc.CommR), SealedFile: sealed.Sealed, CacheDir: cache.Cache}, ""
}

// Sector resolves sector number n of miner, looking its location up in
// the store first.
func (l Locator) Sector(miner, n uint64, post sectorfile.PoStProof) (Replica, string) {
	loc, why := l.Location(miner, n)
	if why != "" {
		return Replica{}, why
	}
	return l.Replica(loc, post)
}

// Location is the stored location of sector number n of miner, or a
// reason why there is none.
func (l Locator) Location(miner, n uint64) (fsm.SectorLocation, string) {
	loc, ok := l.Store.Location(fsm.SectorID{Miner: miner, Number: n})
	if !ok {
		return fsm.SectorLocation{}, fmt.Sprintf("no location in the store for %s; add it with 'vsm sector location put' or 'import'", sectorfile.SectorName(miner, n))
	}
	return loc, ""
}

// SealMismatch says why a sector sealed with sealProof cannot be proven
// with the miner's WindowPoSt type, or "" when it can.
func SealMismatch(sealProof uint8, post sectorfile.PoStProof) string {
	p, err := sectorfile.PoStProofFromSeal(int64(sealProof))
	if err != nil {
		return err.Error()
	}
	if p.SectorSize != post.SectorSize {
		return fmt.Sprintf("seal proof %d is for %s sectors but the miner proves %s sectors", sealProof, sectorfile.FormatSize(p.SectorSize), sectorfile.FormatSize(post.SectorSize))
	}
	return ""
}
