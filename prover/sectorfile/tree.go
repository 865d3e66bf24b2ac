package sectorfile

import (
	"crypto/sha256"
	"fmt"
	"math/bits"
)

// NodeSize is the size of one tree node / replica node in bytes.
const NodeSize = 32

// Node is one 32-byte tree node or commitment.
type Node = [NodeSize]byte

// HashPair hashes two child nodes into their parent: SHA-256 of left||right
// with the two top bits of the last byte cleared, so that every node is a
// valid BLS12-381 scalar as in Filecoin's Sha256Hasher.
func HashPair(left, right *Node) Node {
	var buf [2 * NodeSize]byte
	copy(buf[:NodeSize], left[:])
	copy(buf[NodeSize:], right[:])
	h := sha256.Sum256(buf[:])
	h[31] &= 0x3f
	return h
}

// CommR derives the replica commitment from comm_c and comm_r_last.
func CommR(commC, commRLast Node) Node {
	return HashPair(&commC, &commRLast)
}

// Geometry is the shape of a sector's tree-r-last.
type Geometry struct {
	SectorSize uint64
	// Leaves is the number of 32-byte nodes in the replica (a power of two).
	Leaves uint64
	// Depth is the number of levels above the leaves (log2 Leaves); a Merkle
	// path has Depth siblings.
	Depth int
}

// GeometryFor returns the tree shape for a sector size; the size must be a
// power of two of at least two nodes.
func GeometryFor(size uint64) (Geometry, error) {
	if size < 2*NodeSize || size&(size-1) != 0 {
		return Geometry{}, fmt.Errorf("sector size %d is not a power of two of at least %d bytes", size, 2*NodeSize)
	}
	leaves := size / NodeSize
	return Geometry{SectorSize: size, Leaves: leaves, Depth: bits.TrailingZeros64(leaves)}, nil
}

// TreeFileSize is the size of the tree-r-last file: every node above the
// leaves.
func (g Geometry) TreeFileSize() int64 {
	return int64(g.Leaves-1) * NodeSize
}

// NodeOffset is the byte offset in the tree file of node index at level
// (1 = parents of the leaves, Depth = the root).
func (g Geometry) NodeOffset(level int, index uint64) int64 {
	// Levels 1..level-1 hold Leaves/2 + Leaves/4 + ... nodes, which is
	// Leaves - Leaves>>(level-1).
	before := g.Leaves - g.Leaves>>(level-1)
	return int64(before+index) * NodeSize
}

// RootOffset is the offset of the root (comm_r_last) in the tree file.
func (g Geometry) RootOffset() int64 {
	return g.TreeFileSize() - NodeSize
}

// RootFromPath recomputes the root from a leaf, its index and its Depth
// siblings (lowest first).
func RootFromPath(leaf Node, index uint64, path []Node) Node {
	cur := leaf
	for _, sib := range path {
		if index&1 == 0 {
			cur = HashPair(&cur, &sib)
		} else {
			cur = HashPair(&sib, &cur)
		}
		index >>= 1
	}
	return cur
}
