package engine

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

// Sector is one sector to prove, with its files resolved to local paths.
type Sector struct {
	ID         uint64
	CommR      [32]byte
	SealedPath string
	CacheDir   string
}

// Fault is a sector that could not be proven, with the reason.
type Fault struct {
	SectorID uint64
	Reason   string
}

// Result of proving a partition.
type Result struct {
	// Proof covers the Proven sectors; nil when none could be proven.
	Proof []byte
	// Proven lists the proven sectors in ascending sector number, the
	// order of their proofs inside Proof.
	Proven []uint64
	// Faults lists the sectors that could not be proven, in task order.
	Faults []Fault
	// Reads is the number of challenged leaves read and checked (with their
	// paths), faulty sectors included up to the point they failed.
	Reads int64
}

// DefaultParallel is the default number of sectors read at once. Reads are
// small and random; on network storage, latency rather than bandwidth
// limits them, so many in flight is what makes a deadline.
const DefaultParallel = 32

// Prover produces built-in engine proofs. The zero value reads one sector at
// a time.
type Prover struct {
	// Parallel bounds how many sectors are read at once.
	Parallel int
}

// Prove reads and checks every sector's challenged leaves (the vanilla
// proof) with bounded parallel I/O and returns ONE proof over the good ones,
// whatever partitions they come from: the shape of filecoin-ffi's
// GenerateWindowPoSt, which proves the union of a message's partitions as
// one. The sectors inside the proof are in ascending sector number (as
// rust-fil-proofs orders its replicas), so the same sectors give the same
// proof bytes in any task order.
// A sector whose files are missing, short or do not match its commitments is
// a Fault, not an error; errors are for bad input (unknown proof type,
// duplicate sectors) and cancellation.
func (p Prover) Prove(ctx context.Context, miner uint64, proofType string, randomness [32]byte, sectors []Sector) (Result, error) {
	pp, err := sectorfile.PoStProofByName(proofType)
	if err != nil {
		return Result{}, err
	}
	geo, err := sectorfile.GeometryFor(pp.SectorSize)
	if err != nil {
		return Result{}, err
	}
	seen := make(map[uint64]bool, len(sectors))
	for _, s := range sectors {
		if seen[s.ID] {
			return Result{}, fmt.Errorf("sector %d appears twice in the task", s.ID)
		}
		seen[s.ID] = true
	}
	rnd := NormalizeRandomness(randomness)

	proofs := make([]SectorProof, len(sectors))
	faults := make([]error, len(sectors))
	var reads atomic.Int64
	var next atomic.Int64
	workers := max(1, min(p.Parallel, len(sectors)))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(sectors) || ctx.Err() != nil {
					return
				}
				var n int64
				proofs[i], n, faults[i] = ReadSectorN(geo, rnd, sectors[i], pp.Challenges())
				reads.Add(n)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("proving interrupted: %w", err)
	}

	res := Result{Reads: reads.Load()}
	good := make([]SectorProof, 0, len(sectors))
	for i, s := range sectors {
		if faults[i] != nil {
			res.Faults = append(res.Faults, Fault{SectorID: s.ID, Reason: faults[i].Error()})
			continue
		}
		good = append(good, proofs[i])
	}
	slices.SortFunc(good, func(a, b SectorProof) int { return cmp.Compare(a.SectorID, b.SectorID) })
	for _, g := range good {
		res.Proven = append(res.Proven, g.SectorID)
	}
	if len(good) > 0 {
		res.Proof = encodeProof(miner, pp, geo.Depth, good)
	}
	return res, nil
}

// ReadSector reads and checks one sector's vanilla proof: comm_r against
// p_aux, the stored root against comm_r_last, and each challenged leaf's path
// against the root. It returns the proof, the number of challenges read, and
// a non-nil error (the fault reason) when the sector cannot be proven.
// randomness must be normalized.
func ReadSector(geo sectorfile.Geometry, randomness [32]byte, s Sector) (SectorProof, int64, error) {
	return ReadSectorN(geo, randomness, s, ChallengesPerSector)
}

// ReadSectorN is ReadSector with n challenges (WinningPoSt reads 66).
func ReadSectorN(geo sectorfile.Geometry, randomness [32]byte, s Sector, n int) (SectorProof, int64, error) {
	aux, err := sectorfile.ReadPAux(s.CacheDir)
	if err != nil {
		return SectorProof{}, 0, fmt.Errorf("cache dir %s: %w", s.CacheDir, err)
	}
	if got := sectorfile.CommR(aux.CommC, aux.CommRLast); got != s.CommR {
		return SectorProof{}, 0, fmt.Errorf("p_aux commitments give comm_r %s but the sector's comm_r is %s (wrong cache dir or replaced files)",
			hex.EncodeToString(got[:]), hex.EncodeToString(s.CommR[:]))
	}
	sealed, err := openSized(s.SealedPath, int64(geo.SectorSize), "sealed file")
	if err != nil {
		return SectorProof{}, 0, err
	}
	defer sealed.Close()
	treePath := sectorfile.TreeRLastPath(s.CacheDir)
	tree, err := openSized(treePath, geo.TreeFileSize(), "tree-r-last")
	if err != nil {
		return SectorProof{}, 0, err
	}
	defer tree.Close()

	// The top of the tree is read in one go (the last levels of the file,
	// up to topBytes), like the cached upper rows of rust-fil-proofs'
	// tree-r-last: every challenge's path shares it, so only the levels
	// below it cost one small read each. For small sectors that is the
	// whole tree and a challenge costs a single read of the replica.
	top := topLevel(geo)
	topOff := geo.NodeOffset(top, 0)
	topBuf := make([]byte, geo.TreeFileSize()-topOff)
	if err := readAt(tree, topBuf, topOff, treePath); err != nil {
		return SectorProof{}, 0, err
	}
	root := node(topBuf[len(topBuf)-sectorfile.NodeSize:])
	if root != aux.CommRLast {
		return SectorProof{}, 0, fmt.Errorf("tree-r-last %s: root does not equal comm_r_last from p_aux (tree file corrupt or from another sector)", treePath)
	}

	sp := SectorProof{
		SectorID: s.ID, CommC: aux.CommC, CommRLast: aux.CommRLast,
		Leaves: make([]node, n),
		Paths:  make([][]node, n),
	}
	var pair [2 * sectorfile.NodeSize]byte
	var reads int64
	for i := range n {
		leaf := Challenge(randomness, s.ID, uint64(i), geo.Leaves)
		// The leaf and its sibling are adjacent in the replica: one read.
		if err := readAt(sealed, pair[:], int64(leaf&^1)*sectorfile.NodeSize, s.SealedPath); err != nil {
			return SectorProof{}, reads, err
		}
		path := make([]node, geo.Depth)
		copy(sp.Leaves[i][:], pair[(leaf&1)*32:])
		copy(path[0][:], pair[(leaf&1^1)*32:])
		for level := 1; level < geo.Depth; level++ {
			sib := (leaf >> level) ^ 1
			off := geo.NodeOffset(level, sib)
			if level >= top {
				copy(path[level][:], topBuf[off-topOff:])
				continue
			}
			if err := readAt(tree, path[level][:], off, treePath); err != nil {
				return SectorProof{}, reads, err
			}
		}
		reads++
		if got := sectorfile.RootFromPath(sp.Leaves[i], leaf, path); got != root {
			return SectorProof{}, reads, fmt.Errorf("challenge %d (leaf %d) does not hash to the tree-r-last root: replica %s or its tree is corrupt", i, leaf, s.SealedPath)
		}
		sp.Paths[i] = path
	}
	return sp, reads, nil
}

// topBytes bounds the upper part of tree-r-last read in one piece per
// sector.
const topBytes = 64 << 10

// topLevel is the lowest tree level from which the rest of the tree file
// fits in topBytes.
func topLevel(geo sectorfile.Geometry) int {
	for level := 1; level <= geo.Depth; level++ {
		if geo.TreeFileSize()-geo.NodeOffset(level, 0) <= topBytes {
			return level
		}
	}
	return geo.Depth
}

// openSized opens a file and checks its size, so a truncated file is
// reported as such rather than as a short read somewhere in the middle.
func openSized(path string, want int64, what string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if st.Size() != want {
		_ = f.Close()
		return nil, fmt.Errorf("%s %s is %d bytes, want %d (truncated, or a different sector size)", what, path, st.Size(), want)
	}
	return f, nil
}

func readAt(f *os.File, buf []byte, off int64, path string) error {
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s at offset %d: file ended early", path, off)
		}
		return fmt.Errorf("read %s at offset %d: %w", path, off, err)
	}
	return nil
}
