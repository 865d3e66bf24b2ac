package fullnode

// Message limits of the miner actor, from builtin-actors
// runtime/src/runtime/policy.rs (policy_constants, the same on every
// network) and actors/miner/src/lib.rs. The devnet refuses messages that
// break them and the runner never builds one that does.
const (
	// PoStedPartitionsMax is the most partitions one SubmitWindowedPoSt may
	// name (POSTED_PARTITIONS_MAX).
	PoStedPartitionsMax = 3
	// AddressedSectorsMax bounds the sectors one message may address
	// (ADDRESSED_SECTORS_MAX): a SubmitWindowedPoSt's partitions times the
	// partition size, and a declaration's distinct sectors.
	AddressedSectorsMax = 25_000
	// AddressedPartitionsMax bounds the distinct (deadline, partition)
	// pairs one DeclareFaults or DeclareFaultsRecovered may address
	// (ADDRESSED_PARTITIONS_MAX = MAX_PARTITIONS_PER_DEADLINE).
	AddressedPartitionsMax = 3_000
	// DeclarationsMax was the most entries a DeclareFaults or
	// DeclareFaultsRecovered could list (DECLARATIONS_MAX). FIP-0100
	// removed that check (builtin-actors fa53fe06, actors v16): entries
	// for the same (deadline, partition) are merged and only
	// AddressedPartitionsMax and AddressedSectorsMax remain. Keeping a
	// message within it is still safe on older networks.
	DeclarationsMax = AddressedPartitionsMax
	// MaxPoStProofSize is the size of one partition's Groth16 proof
	// (RegisteredPoStProof::proof_size for every WindowPoSt type); a
	// message's single proof may be at most this times its partitions.
	MaxPoStProofSize = 192
	// RandomnessLength is the most bytes ChainCommitRand may hold
	// (fvm_shared RANDOMNESS_LENGTH).
	RandomnessLength = 32
)

// PoStPartitionLimit is exactly the actor's cap on the partitions of one
// SubmitWindowedPoSt for partitions of partitionSectors sectors:
// min(load_partitions_sectors_max, PoStedPartitionsMax), where
// load_partitions_sectors_max = min(AddressedSectorsMax / partitionSectors,
// AddressedPartitionsMax). It is 0 when a partition alone holds more than
// AddressedSectorsMax sectors (no real proof type does).
func PoStPartitionLimit(partitionSectors uint64) uint64 {
	if partitionSectors == 0 {
		return PoStedPartitionsMax
	}
	return min(AddressedSectorsMax/partitionSectors, AddressedPartitionsMax, PoStedPartitionsMax)
}

// MaxPartitionsPerPoSt is PoStPartitionLimit as a batch size for senders:
// never less than one, so a sender always makes progress (for every real
// partition size the two agree: 2349 sectors give 3).
func MaxPartitionsPerPoSt(partitionSectors uint64) int {
	return int(max(PoStPartitionLimit(partitionSectors), 1))
}
