package sectorfile

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// MaxCreateSize is the largest sector Create writes. Larger Filecoin sizes
// (32 GiB, 64 GiB) need twice their size on disk and minutes of hashing; they
// come from a real sealing pipeline, not from this helper.
const MaxCreateSize = Size512MiB

// CreateOptions says which sector to write and where.
type CreateOptions struct {
	Miner  uint64
	Number uint64
	// Size is the sector size in bytes: 2KiB, 8MiB or 512MiB.
	Size uint64
	// Dir is the storage path; sealed/ and cache/ (or update/ and
	// update-cache/) are created under it.
	Dir string
	// Upgraded writes a snap-upgraded sector (update/, update-cache/).
	Upgraded bool
	// Random fills the replica from crypto/rand. Without it the contents
	// are a deterministic function of (Miner, Number), so the same command
	// writes the same sector and comm_r twice.
	Random bool
}

// Sector describes a sector written by Create.
type Sector struct {
	Miner     uint64    `json:"miner"`
	Number    uint64    `json:"number"`
	Size      uint64    `json:"size"`
	ProofType PoStProof `json:"-"`
	Upgraded  bool      `json:"upgraded"`
	CommC     Node      `json:"-"`
	CommRLast Node      `json:"-"`
	CommR     Node      `json:"-"`
	Paths     Paths     `json:"-"`
}

// tAux is the t_aux document of the built-in format. Real t_aux files are
// bincode TemporaryAux values used by sealing; nothing in WindowPoSt reads
// them, so ours describes the tree instead, for people and tools.
type tAux struct {
	Format     string `json:"format"`
	SectorSize uint64 `json:"sector_size"`
	Leaves     uint64 `json:"leaves"`
	Arity      int    `json:"arity"`
	Hash       string `json:"hash"`
	TreeRLast  string `json:"tree_r_last"`
	Note       string `json:"note"`
}

// FormatName identifies the built-in sector format in t_aux.
const FormatName = "vsm-builtin-sha256-binary-v1"

// Create writes a complete sector for the built-in engine: replica, tree-r-last,
// p_aux and t_aux. Files are written under temporary names and renamed into
// place at the end, so an interrupted Create never leaves a half sector that
// looks whole. An existing sector is never overwritten.
func Create(ctx context.Context, opts CreateOptions) (Sector, error) {
	if opts.Dir == "" {
		return Sector{}, errors.New("create sector: no storage directory given")
	}
	pp, err := PoStProofForSize(opts.Size)
	if err != nil {
		return Sector{}, fmt.Errorf("create sector: %w", err)
	}
	if opts.Size > MaxCreateSize {
		return Sector{}, fmt.Errorf("create sector: %s sectors cannot be written here (they need %s of replica plus as much tree on disk); use 2KiB, 8MiB or 512MiB",
			FormatSize(opts.Size), FormatSize(opts.Size))
	}
	geo, err := GeometryFor(opts.Size)
	if err != nil {
		return Sector{}, fmt.Errorf("create sector: %w", err)
	}
	paths := LayoutPaths(opts.Dir, opts.Miner, opts.Number, opts.Upgraded)
	for _, p := range []string{paths.Sealed, paths.Cache} {
		if _, err := os.Lstat(p); err == nil {
			return Sector{}, fmt.Errorf("create sector %s: %s already exists; remove it or pick another sector number", SectorName(opts.Miner, opts.Number), p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return Sector{}, fmt.Errorf("create sector: %w", err)
		}
	}
	for _, d := range []string{filepath.Dir(paths.Sealed), filepath.Dir(paths.Cache)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Sector{}, fmt.Errorf("create sector: %w", err)
		}
	}

	name := SectorName(opts.Miner, opts.Number)
	sealedTmp, err := os.CreateTemp(filepath.Dir(paths.Sealed), "."+name+".tmp-*")
	if err != nil {
		return Sector{}, fmt.Errorf("create sector: %w", err)
	}
	cacheTmp, err := os.MkdirTemp(filepath.Dir(paths.Cache), "."+name+".tmp-*")
	if err != nil {
		_ = sealedTmp.Close()
		_ = os.Remove(sealedTmp.Name())
		return Sector{}, fmt.Errorf("create sector: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = sealedTmp.Close()
			_ = os.Remove(sealedTmp.Name())
			_ = os.RemoveAll(cacheTmp)
		}
	}()

	var src io.Reader
	if opts.Random {
		src = crand.Reader
	} else {
		src = rand.NewChaCha8(replicaSeed(opts.Miner, opts.Number, []byte("replica")))
	}
	root, err := writeReplicaAndTree(ctx, geo, src, sealedTmp, TreeRLastPath(cacheTmp))
	if err != nil {
		return Sector{}, fmt.Errorf("create sector %s: %w", name, err)
	}
	if err := sealedTmp.Close(); err != nil {
		return Sector{}, fmt.Errorf("create sector %s: close replica: %w", name, err)
	}

	// comm_c stands in for the column commitment of real sealing (which has
	// no counterpart without SDR layers): a value bound to the sector, so
	// comm_r differs between sectors even with equal data.
	var commC Node
	if opts.Random {
		if _, err := io.ReadFull(crand.Reader, commC[:]); err != nil {
			return Sector{}, fmt.Errorf("create sector %s: comm_c: %w", name, err)
		}
	} else {
		seed := replicaSeed(opts.Miner, opts.Number, []byte("comm_c"))
		commC = HashPair(&seed, &root)
	}
	commC[31] &= 0x3f
	aux := PAux{CommC: commC, CommRLast: root}
	if err := os.WriteFile(filepath.Join(cacheTmp, PAuxFile), aux.bytes(), 0o644); err != nil {
		return Sector{}, fmt.Errorf("create sector %s: %w", name, err)
	}
	ta, err := json.MarshalIndent(tAux{
		Format: FormatName, SectorSize: geo.SectorSize, Leaves: geo.Leaves, Arity: 2,
		Hash: "sha256-trunc254", TreeRLast: TreeRLastFile,
		Note: "written by vsm for its built-in engine; not valid on Filecoin mainnet",
	}, "", "  ")
	if err != nil {
		return Sector{}, fmt.Errorf("create sector %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(cacheTmp, TAuxFile), append(ta, '\n'), 0o644); err != nil {
		return Sector{}, fmt.Errorf("create sector %s: %w", name, err)
	}
	if err := os.Rename(sealedTmp.Name(), paths.Sealed); err != nil {
		return Sector{}, fmt.Errorf("create sector %s: %w", name, err)
	}
	if err := os.Rename(cacheTmp, paths.Cache); err != nil {
		_ = os.Remove(paths.Sealed)
		return Sector{}, fmt.Errorf("create sector %s: %w", name, err)
	}
	done = true
	return Sector{
		Miner: opts.Miner, Number: opts.Number, Size: opts.Size, ProofType: pp, Upgraded: opts.Upgraded,
		CommC: commC, CommRLast: root, CommR: CommR(commC, root), Paths: paths,
	}, nil
}

// writeReplicaAndTree streams the replica into sealed while hashing the
// first tree level, then builds each higher level from the one below it,
// reading it back from the tree file. Memory stays bounded by the chunk
// size whatever the sector size.
func writeReplicaAndTree(ctx context.Context, geo Geometry, src io.Reader, sealed *os.File, treePath string) (Node, error) {
	tree, err := os.OpenFile(treePath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Node{}, err
	}
	defer tree.Close()

	const chunk = 1 << 20
	tw := bufio.NewWriterSize(tree, chunk/2)
	sw := bufio.NewWriterSize(sealed, chunk)
	buf := make([]byte, min(uint64(chunk), geo.SectorSize))
	var parent [NodeSize]byte
	for written := uint64(0); written < geo.SectorSize; written += uint64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return Node{}, err
		}
		if _, err := io.ReadFull(src, buf); err != nil {
			return Node{}, fmt.Errorf("generate replica data: %w", err)
		}
		for i := NodeSize - 1; i < len(buf); i += NodeSize {
			buf[i] &= 0x3f // each node is a field element
		}
		if _, err := sw.Write(buf); err != nil {
			return Node{}, fmt.Errorf("write replica: %w", err)
		}
		for i := 0; i < len(buf); i += 2 * NodeSize {
			parent = HashPair((*Node)(buf[i:i+NodeSize]), (*Node)(buf[i+NodeSize:i+2*NodeSize]))
			if _, err := tw.Write(parent[:]); err != nil {
				return Node{}, fmt.Errorf("write tree-r-last: %w", err)
			}
		}
	}
	if err := sw.Flush(); err != nil {
		return Node{}, fmt.Errorf("write replica: %w", err)
	}
	if err := sealed.Sync(); err != nil {
		return Node{}, fmt.Errorf("sync replica: %w", err)
	}
	for level := 2; level <= geo.Depth; level++ {
		if err := tw.Flush(); err != nil {
			return Node{}, fmt.Errorf("write tree-r-last: %w", err)
		}
		below := geo.Leaves >> (level - 1)
		off := geo.NodeOffset(level-1, 0)
		for done := uint64(0); done < below; {
			if err := ctx.Err(); err != nil {
				return Node{}, err
			}
			n := min(below-done, uint64(len(buf)/NodeSize))
			part := buf[:n*NodeSize]
			if _, err := tree.ReadAt(part, off+int64(done)*NodeSize); err != nil {
				return Node{}, fmt.Errorf("read back tree level %d: %w", level-1, err)
			}
			for i := 0; i < len(part); i += 2 * NodeSize {
				parent = HashPair((*Node)(part[i:i+NodeSize]), (*Node)(part[i+NodeSize:i+2*NodeSize]))
				if _, err := tw.Write(parent[:]); err != nil {
					return Node{}, fmt.Errorf("write tree-r-last: %w", err)
				}
			}
			done += n
		}
	}
	if err := tw.Flush(); err != nil {
		return Node{}, fmt.Errorf("write tree-r-last: %w", err)
	}
	if err := tree.Sync(); err != nil {
		return Node{}, fmt.Errorf("sync tree-r-last: %w", err)
	}
	var root Node
	if _, err := tree.ReadAt(root[:], geo.RootOffset()); err != nil {
		return Node{}, fmt.Errorf("read tree root: %w", err)
	}
	return root, nil
}
