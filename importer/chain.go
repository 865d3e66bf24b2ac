package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/fullnode"
)

// ChainSectors lists a miner's sectors from the chain, with the facts a
// location needs (seal proof type, CommR, snap-upgraded): the sector
// numbers from its deadlines' partitions (every sector the miner proves),
// then StateSectorGetInfo for each, parallel requests in flight. These are
// methods Lotus, venus and the devnet all serve.
func ChainSectors(ctx context.Context, chain *fullnode.Client, miner uint64, parallel int, progress func(done, total int)) ([]ChainSector, error) {
	maddr := fullnode.IDAddress(miner)
	dls, err := chain.StateMinerDeadlines(ctx, maddr, nil)
	if err != nil {
		return nil, fmt.Errorf("list the deadlines of t0%d on the chain: %w", miner, err)
	}
	var numbers []uint64
	for i := range dls {
		parts, err := chain.StateMinerPartitions(ctx, maddr, uint64(i), nil)
		if err != nil {
			return nil, fmt.Errorf("partitions of t0%d deadline %d: %w", miner, i, err)
		}
		for _, p := range parts {
			if err := p.AllSectors.ForEach(func(n uint64) error { numbers = append(numbers, n); return nil }); err != nil {
				return nil, err
			}
		}
	}
	if len(numbers) == 0 {
		return nil, fmt.Errorf("the chain lists no sector for t0%d: is it the right miner and the right chain?", miner)
	}
	out := make([]ChainSector, len(numbers))
	err = forEach(ctx, len(numbers), parallel, func(ctx context.Context, i int) error {
		var err error
		out[i], err = chainSector(ctx, chain, maddr, numbers[i])
		return err
	}, func(done int) {
		if progress != nil {
			progress(done, len(numbers))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SectorFromChain is one sector's seal proof type, CommR and snap state
// (StateSectorGetInfo); ok is false when the chain has no such sector.
func SectorFromChain(ctx context.Context, chain *fullnode.Client, miner, number uint64) (cs ChainSector, ok bool, err error) {
	cs, err = chainSector(ctx, chain, fullnode.IDAddress(miner), number)
	if errors.Is(err, errNoSector) {
		return cs, false, nil
	}
	return cs, err == nil, err
}

var errNoSector = errors.New("the chain has no info for the sector")

func chainSector(ctx context.Context, chain *fullnode.Client, maddr address.Address, n uint64) (ChainSector, error) {
	si, err := chain.StateSectorGetInfo(ctx, maddr, abi.SectorNumber(n), nil)
	if err != nil {
		return ChainSector{}, fmt.Errorf("sector %d of %s on the chain: %w", n, maddr, err)
	}
	if si == nil {
		return ChainSector{}, fmt.Errorf("sector %d of %s: %w", n, maddr, errNoSector)
	}
	raw, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
	if err != nil {
		return ChainSector{}, fmt.Errorf("sector %d of %s: sealed CID: %w", n, maddr, err)
	}
	var commR [32]byte
	copy(commR[:], raw)
	return ChainSector{Number: n, SealProof: uint8(si.SealProof), CommR: commR, Upgraded: si.SectorKeyCID != nil && si.SectorKeyCID.Defined()}, nil
}
