package fullnode

import "github.com/filecoin-project/go-state-types/builtin/v16/miner"

// Message limits of the miner actor are go-state-types' (builtin/v16/miner
// policy: PoStedPartitionsMax, AddressedSectorsMax, AddressedPartitionsMax,
// DeclarationsMax; the same on every network). FIP-0100 (actors v16)
// removed the DeclarationsMax check on DeclareFaults and
// DeclareFaultsRecovered (entries for the same deadline and partition are
// merged, and only AddressedPartitionsMax and AddressedSectorsMax remain);
// keeping a message within it is still safe on older networks. The devnet
// refuses messages that break them and the runner never builds one that
// does. The two below are not in go-state-types.
const (
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
		return miner.PoStedPartitionsMax
	}
	return min(miner.AddressedSectorsMax/partitionSectors, miner.AddressedPartitionsMax, miner.PoStedPartitionsMax)
}

// MaxPartitionsPerPoSt is PoStPartitionLimit as a batch size for senders:
// never less than one, so a sender always makes progress (for every real
// partition size the two agree: 2349 sectors give 3).
func MaxPartitionsPerPoSt(partitionSectors uint64) int {
	return int(max(PoStPartitionLimit(partitionSectors), 1))
}
