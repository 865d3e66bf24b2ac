// Package prover runs WindowPoSt proving on one node: it reads
// ext-prover.cfg, supervises one child prover process per [[WdPost]] block
// (per GPU), and dispatches prove-partition requests to them over the
// damocles vc-processors wire protocol (newline-delimited JSON on the child's
// stdin/stdout, see docs/ext-prover.md). The child side of the protocol, run
// as `vsm wdpost`, lives in this package too (Serve).
//
// The built-in proof engine (package prover/engine) produces SHA-256
// Merkle-inclusion proofs; they are honest work of the same shape as a real
// WindowPoSt but are NOT valid on Filecoin mainnet. The real engine is the
// separate Go module under prover/ffi, built with filecoin-ffi.
package prover
