package fullnode

// Message limits of the miner actor (builtin-actors runtime Policy, the
// same on every network). The devnet refuses messages that break them and
// the runner never builds one that does.
const (
	// PoStedPartitionsMax is the most partitions one SubmitWindowedPoSt may
	// name (policy.posted_partitions_max).
	PoStedPartitionsMax = 3
	// AddressedSectorsMax bounds the sectors one message may address
	// (policy.addressed_sectors_max).
	AddressedSectorsMax = 25_000
	// AddressedPartitionsMax bounds the partitions one declaration message
	// may address (policy.addressed_partitions_max).
	AddressedPartitionsMax = 3_000
	// DeclarationsMax bounds the (deadline, partition) entries of one
	// DeclareFaults or DeclareFaultsRecovered (policy.declarations_max).
	DeclarationsMax = AddressedPartitionsMax
	// MaxPoStProofSize is the size of one partition's Groth16 proof; a
	// message's single proof may be at most this times its partitions.
	MaxPoStProofSize = 192
)

// MaxPartitionsPerPoSt is how many partitions of partitionSectors sectors
// one SubmitWindowedPoSt may carry: min(AddressedSectorsMax /
// partitionSectors, PoStedPartitionsMax), and never less than one.
func MaxPartitionsPerPoSt(partitionSectors uint64) int {
	if partitionSectors == 0 {
		return PoStedPartitionsMax
	}
	n := AddressedSectorsMax / partitionSectors
	if n > PoStedPartitionsMax {
		n = PoStedPartitionsMax
	}
	if n < 1 {
		n = 1
	}
	return int(n)
}
