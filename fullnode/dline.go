package fullnode

import (
	"fmt"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/dline"
)

// Policy holds the WindowPoSt timing constants that go-state-types'
// dline.NewInfo takes as arguments. Mainnet values are in MainnetPolicy
// (DESIGN section 1); test networks (Lotus 2k builds, the devnet) shrink
// them, and dline.Info carries them so callers never hard-code them.
type Policy struct {
	PeriodDeadlines        uint64         // WPoStPeriodDeadlines
	ChallengeWindow        abi.ChainEpoch // WPoStChallengeWindow
	ChallengeLookback      abi.ChainEpoch // WPoStChallengeLookback
	FaultDeclarationCutoff abi.ChainEpoch
}

// MainnetPolicy is the Filecoin mainnet policy.
func MainnetPolicy() Policy {
	return Policy{PeriodDeadlines: 48, ChallengeWindow: 60, ChallengeLookback: 20, FaultDeclarationCutoff: 70}
}

// ProvingPeriod is PeriodDeadlines * ChallengeWindow.
func (p Policy) ProvingPeriod() abi.ChainEpoch {
	return abi.ChainEpoch(p.PeriodDeadlines) * p.ChallengeWindow
}

// Validate rejects policies the deadline arithmetic cannot use.
func (p Policy) Validate() error {
	switch {
	case p.PeriodDeadlines == 0:
		return fmt.Errorf("policy: PeriodDeadlines must be positive")
	case p.ChallengeWindow <= 0:
		return fmt.Errorf("policy: ChallengeWindow must be positive")
	case p.ChallengeLookback < 0:
		return fmt.Errorf("policy: ChallengeLookback must not be negative")
	case p.FaultDeclarationCutoff < 0:
		return fmt.Errorf("policy: FaultDeclarationCutoff must not be negative")
	}
	return nil
}

// NewInfo is dline.NewInfo with the policy's constants.
func (p Policy) NewInfo(periodStart abi.ChainEpoch, index uint64, current abi.ChainEpoch) *dline.Info {
	return dline.NewInfo(periodStart, index, current, p.PeriodDeadlines, p.ProvingPeriod(), p.ChallengeWindow, p.ChallengeLookback, p.FaultDeclarationCutoff)
}

// PolicyOf returns the constants a deadline info was computed with.
func PolicyOf(d *dline.Info) Policy {
	return Policy{
		PeriodDeadlines:        d.WPoStPeriodDeadlines,
		ChallengeWindow:        d.WPoStChallengeWindow,
		ChallengeLookback:      d.WPoStChallengeLookback,
		FaultDeclarationCutoff: d.FaultDeclarationCutoff,
	}
}

// DeadlineAt returns the deadline open at epoch current for a miner whose
// proving periods start at epochs congruent to offset modulo the proving
// period (the actor's NewDeadlineInfoFromOffsetAndEpoch, with the policy's
// constants instead of mainnet's).
func DeadlineAt(offset, current abi.ChainEpoch, p Policy) *dline.Info {
	pp := p.ProvingPeriod()
	start := quantizeDown(current, pp, offset)
	idx := uint64((current - start) / p.ChallengeWindow)
	return p.NewInfo(start, idx, current)
}

// quantizeDown returns the largest e' <= e with e' ≡ offset (mod unit),
// correct for negative epochs too.
func quantizeDown(e, unit, offset abi.ChainEpoch) abi.ChainEpoch {
	off := offset % unit
	if off < 0 {
		off += unit
	}
	rem := (e - off) % unit
	if rem < 0 {
		rem += unit
	}
	return e - rem
}

// ValidateDeadlineInfo checks that a node's dline.Info is consistent: the
// derived fields agree with PeriodStart, Index and the constants, so a node
// answering with inconsistent data is caught before anything is scheduled
// on it.
func ValidateDeadlineInfo(d *dline.Info) error {
	p := PolicyOf(d)
	if err := p.Validate(); err != nil {
		return fmt.Errorf("deadline info: %w", err)
	}
	if d.WPoStProvingPeriod != p.ProvingPeriod() {
		return fmt.Errorf("deadline info: WPoStProvingPeriod %d != %d deadlines * %d epochs",
			d.WPoStProvingPeriod, p.PeriodDeadlines, p.ChallengeWindow)
	}
	if d.Index >= d.WPoStPeriodDeadlines {
		return fmt.Errorf("deadline info: index %d out of range [0, %d)", d.Index, d.WPoStPeriodDeadlines)
	}
	if want := p.NewInfo(d.PeriodStart, d.Index, d.CurrentEpoch); *want != *d {
		return fmt.Errorf("deadline info: derived fields disagree: got open %d close %d challenge %d cutoff %d, want %d %d %d %d",
			d.Open, d.Close, d.Challenge, d.FaultCutoff, want.Open, want.Close, want.Challenge, want.FaultCutoff)
	}
	return nil
}

// DeadlineString is a one-line summary of a deadline info for logs.
func DeadlineString(d *dline.Info) string {
	return fmt.Sprintf("deadline %d of period %d (open %d, close %d, challenge %d, cutoff %d, at %d)",
		d.Index, d.PeriodStart, d.Open, d.Close, d.Challenge, d.FaultCutoff, d.CurrentEpoch)
}
