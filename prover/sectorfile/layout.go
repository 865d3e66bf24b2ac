package sectorfile

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// File and directory names of the Lotus layout.
const (
	SealedDir      = "sealed"
	CacheDir       = "cache"
	UpdateDir      = "update"
	UpdateCacheDir = "update-cache"
	PAuxFile       = "p_aux"
	TAuxFile       = "t_aux"
	TreeRLastFile  = "sc-02-data-tree-r-last.dat"
)

// SectorName is the Lotus file name of a sector: s-t0<miner>-<number>.
func SectorName(miner, number uint64) string {
	return fmt.Sprintf("s-t0%d-%d", miner, number)
}

// Paths are the files of one sector under a storage path.
type Paths struct {
	// Sealed is the replica file (sealed/ or, when upgraded, update/).
	Sealed string
	// Cache is the cache directory (cache/ or update-cache/).
	Cache string
}

// LayoutPaths returns where a sector lives under storage path root.
func LayoutPaths(root string, miner, number uint64, upgraded bool) Paths {
	name := SectorName(miner, number)
	sealed, cache := SealedDir, CacheDir
	if upgraded {
		sealed, cache = UpdateDir, UpdateCacheDir
	}
	return Paths{Sealed: filepath.Join(root, sealed, name), Cache: filepath.Join(root, cache, name)}
}

// TreeRLastPath is the tree-r-last file inside a cache directory.
func TreeRLastPath(cacheDir string) string { return filepath.Join(cacheDir, TreeRLastFile) }

// PAux holds the persistent commitments of a sealed sector, stored in p_aux
// as comm_c followed by comm_r_last (the 64-byte bincode layout Lotus uses).
type PAux struct {
	CommC     Node
	CommRLast Node
}

// ReadPAux reads p_aux from a cache directory.
func ReadPAux(cacheDir string) (PAux, error) {
	p := filepath.Join(cacheDir, PAuxFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return PAux{}, fmt.Errorf("read p_aux: %w", err)
	}
	if len(data) != 2*NodeSize {
		return PAux{}, fmt.Errorf("p_aux %s is %d bytes, want %d (comm_c and comm_r_last)", p, len(data), 2*NodeSize)
	}
	var a PAux
	copy(a.CommC[:], data[:NodeSize])
	copy(a.CommRLast[:], data[NodeSize:])
	return a, nil
}

func (a PAux) bytes() []byte {
	b := make([]byte, 0, 2*NodeSize)
	b = append(b, a.CommC[:]...)
	return append(b, a.CommRLast[:]...)
}

// replicaSeed is the 32-byte seed from which a deterministic replica is
// expanded: it binds the data to (miner, number) so two sectors never share
// contents.
func replicaSeed(miner, number uint64, salt []byte) [32]byte {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], miner)
	binary.LittleEndian.PutUint64(b[8:], number)
	var s [32]byte
	copy(s[:], b[:])
	for i, c := range salt {
		s[16+i%16] ^= c
	}
	return s
}
