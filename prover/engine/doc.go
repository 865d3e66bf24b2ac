// Package engine is vsm's built-in WindowPoSt proof engine.
//
// NOT VALID ON FILECOIN MAINNET. The engine does the same disk work as a real
// WindowPoSt vanilla proof (10 challenged leaves per sector, each with its
// Merkle path, read from the replica and tree-r-last files) and returns a
// SHA-256 Merkle-inclusion proof of them instead of a Groth16 SNARK. It proves
// only sectors in the built-in format of package sectorfile; mainnet sectors
// need the filecoin-ffi engine (prover/ffi).
//
// Challenges follow the Filecoin spec's WindowPoSt leaf challenge
// derivation: for challenge index i (0..9) of sector s,
//
//	leaf = LE64(SHA-256(randomness || LE64(s) || LE64(i))[0:8]) mod leaves
//
// where randomness has the top two bits of its last byte cleared.
//
// # WinningPoSt
//
// The WinningPoSt types (StackedDrgWinning*V1, chain 0..4) prove one
// sector with 66 challenges derived as above. Which sector of the miner's
// eligible set (sorted by number) is challenged follows rust-fil-proofs'
// generate_sector_challenge (WinningSectorChallenges):
//
//	index = LE64(SHA-256(prover_id || randomness || LE64(n))[0:8]) mod setLen
//
// with prover_id the miner id as LEB128, zero-padded to 32 bytes.
//
// # Verifying (the devnet chain's entry point)
//
//	err := engine.Verify(minerID, "StackedDrgWindow2KiBV1_2", randomness,
//		[]engine.SectorCommitment{{ID: 7, CommR: commR7}, {ID: 9, CommR: commR9}},
//		proofBytes)
//
// Verify returns nil when proofBytes proves, for exactly the given sectors
// (given in any order, no duplicates), that each challenged leaf is in the sector's
// tree-r-last and that H(comm_c || comm_r_last) = comm_r. The proof is bound
// to the miner, the proof type and the randomness (through the challenges).
// proofType accepts the V1/V1_1/V1_2 names of a size or a chain
// RegisteredPoStProof number as a decimal string.
//
// # Proof bytes
//
// Little-endian: "VSMWPST1", miner u64, chain proof type u8, sector count u32,
// challenges per sector u8, path depth u8; then per sector: sector number u64,
// comm_c [32], comm_r_last [32], and per challenge the leaf [32] followed by
// depth sibling nodes [32] from the leaf level up. Sectors are in strictly
// ascending sector number: one WindowPoSt proof covers the sorted union of
// the sectors of every partition in its message (as filecoin-ffi's
// GenerateWindowPoSt does), and Verify refuses any other order. The challenge count is 10
// for WindowPoSt and 66 for WinningPoSt; Verify insists on the proof type's.
package engine
