// Package sectorfile is the on-disk sector format: the Lotus/venus layout of
// sealed replicas and cache directories, the SHA-256 tree-r-last that the
// built-in proof engine proves against, the commitments in p_aux, and the
// WindowPoSt proof-type tables (sizes, chain ids, partition sizes).
//
// Layout under a storage path D, for sector s-t0<miner>-<number>:
//
//	D/sealed/s-t0M-N                         replica, SectorSize bytes
//	D/cache/s-t0M-N/p_aux                    comm_c || comm_r_last (64 bytes)
//	D/cache/s-t0M-N/t_aux                    layout description (JSON)
//	D/cache/s-t0M-N/sc-02-data-tree-r-last.dat  tree-r-last above the leaves
//	D/update/, D/update-cache/               the same, for snap-upgraded sectors
//
// The replica is a sequence of 32-byte nodes, each a BLS12-381 field element
// (top two bits of the last byte clear), as real replicas are. The built-in
// tree-r-last is a binary SHA-256 tree whose leaves are those nodes; the file
// stores every level above the leaves, lowest first, ending with the root
// (comm_r_last). As in rust-fil-proofs, the leaves themselves are not in the
// tree file: a vanilla proof reads them from the replica. Node hashes are
// SHA-256 truncated to 254 bits (last byte &= 0x3f), Filecoin's
// Sha256Hasher convention, and comm_r = H(comm_c || comm_r_last).
//
// This format is what vsm's built-in engine proves; real Filecoin sectors use
// Poseidon octrees and comm_c from the column tree, which only the filecoin-ffi
// engine (prover/ffi) can prove. Sectors written by Create are NOT valid on
// Filecoin mainnet.
package sectorfile
