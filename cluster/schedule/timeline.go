package schedule

import (
	"cmp"
	"slices"
)

// Slot is one deadline window on the timeline.
type Slot struct {
	Key Key `json:"key"`
	// Owner is the assigned node, empty if none.
	Owner      string `json:"owner"`
	Partitions int    `json:"partitions"`
	// Challenge is the challenge (randomness) epoch, Open-20.
	Challenge Epoch `json:"challenge"`
	// ProveFrom..ProveBy is the usable proving time under the Config.
	ProveFrom Epoch `json:"prove_from"`
	ProveBy   Epoch `json:"prove_by"`
	Open      Epoch `json:"open"`
	Close     Epoch `json:"close"`
}

// Timeline lists every deadline window that is open at some point in
// [from, from+span), with its owner from assignments (any order), ordered by opening epoch,
// then miner and deadline. It is what `vsm cluster schedule` prints; filter
// by Owner for one node's view or by Key.Miner for one miner's.
func Timeline(miners []Miner, assignments []Assignment, cfg Config, from, span Epoch) []Slot {
	cfg = cfg.withDefaults()
	owners := slices.Clone(assignments)
	slices.SortFunc(owners, func(a, b Assignment) int { return a.Key.compare(b.Key) })
	var out []Slot
	end := from + span
	for _, m := range miners {
		for d := range Deadlines {
			off := mod(m.PeriodStart+Epoch(d)*WindowEpochs, PeriodEpochs)
			// The first window still open at from, then every period after.
			first := from - WindowEpochs + 1
			for open := first + mod(off-first, PeriodEpochs); open < end; open += PeriodEpochs {
				k := Key{Miner: m.ID, Deadline: uint8(d)}
				o, _ := lookup(owners, k)
				out = append(out, Slot{
					Key: k, Owner: o.Node, Partitions: m.Partitions[d],
					Challenge: open - ChallengeLookback,
					ProveFrom: open + cfg.usableFrom(), ProveBy: open + cfg.usableTo(),
					Open: open, Close: open + WindowEpochs,
				})
			}
		}
	}
	slices.SortFunc(out, func(a, b Slot) int {
		return cmp.Or(cmp.Compare(a.Open, b.Open), a.Key.compare(b.Key))
	})
	return out
}
