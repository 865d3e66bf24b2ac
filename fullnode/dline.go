package fullnode

import "fmt"

// Policy holds the WindowPoSt timing constants. Mainnet values are in
// MainnetPolicy (DESIGN section 1); test networks (Lotus 2k builds, the
// devnet) may shrink them, and DeadlineInfo carries them so callers never
// need to hard-code them.
type Policy struct {
	PeriodDeadlines        uint64     // WPoStPeriodDeadlines
	ChallengeWindow        ChainEpoch // WPoStChallengeWindow
	ChallengeLookback      ChainEpoch // WPoStChallengeLookback
	FaultDeclarationCutoff ChainEpoch
}

// MainnetPolicy is the Filecoin mainnet policy.
func MainnetPolicy() Policy {
	return Policy{PeriodDeadlines: 48, ChallengeWindow: 60, ChallengeLookback: 20, FaultDeclarationCutoff: 70}
}

// ProvingPeriod is PeriodDeadlines * ChallengeWindow.
func (p Policy) ProvingPeriod() ChainEpoch {
	return ChainEpoch(p.PeriodDeadlines) * p.ChallengeWindow
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

// DeadlineInfo is StateMinerProvingDeadline's answer (Lotus dline.Info):
// one deadline of one proving period, seen from CurrentEpoch.
type DeadlineInfo struct {
	CurrentEpoch ChainEpoch // epoch at which this info was calculated
	PeriodStart  ChainEpoch // first epoch of the proving period (<= CurrentEpoch)
	Index        uint64     // deadline index, 0 <= Index < WPoStPeriodDeadlines
	Open         ChainEpoch // first epoch a proof may land
	Close        ChainEpoch // first epoch a proof may no longer land
	Challenge    ChainEpoch // epoch of the randomness the proof uses
	FaultCutoff  ChainEpoch // first epoch at which a fault declaration is rejected

	WPoStPeriodDeadlines   uint64
	WPoStProvingPeriod     ChainEpoch
	WPoStChallengeWindow   ChainEpoch
	WPoStChallengeLookback ChainEpoch
	FaultDeclarationCutoff ChainEpoch
}

// NewDeadlineInfo derives every field from the period start and index, as
// the miner actor does.
func NewDeadlineInfo(periodStart ChainEpoch, index uint64, current ChainEpoch, p Policy) DeadlineInfo {
	open := periodStart + ChainEpoch(index)*p.ChallengeWindow
	return DeadlineInfo{
		CurrentEpoch:           current,
		PeriodStart:            periodStart,
		Index:                  index,
		Open:                   open,
		Close:                  open + p.ChallengeWindow,
		Challenge:              open - p.ChallengeLookback,
		FaultCutoff:            open - p.FaultDeclarationCutoff,
		WPoStPeriodDeadlines:   p.PeriodDeadlines,
		WPoStProvingPeriod:     p.ProvingPeriod(),
		WPoStChallengeWindow:   p.ChallengeWindow,
		WPoStChallengeLookback: p.ChallengeLookback,
		FaultDeclarationCutoff: p.FaultDeclarationCutoff,
	}
}

// DeadlineAt returns the deadline open at epoch current for a miner whose
// proving periods start at epochs congruent to offset modulo the proving
// period (the actor's NewDeadlineInfoFromOffsetAndEpoch).
func DeadlineAt(offset, current ChainEpoch, p Policy) DeadlineInfo {
	pp := p.ProvingPeriod()
	start := quantizeDown(current, pp, offset)
	idx := uint64((current - start) / p.ChallengeWindow)
	return NewDeadlineInfo(start, idx, current, p)
}

// quantizeDown returns the largest e' <= e with e' ≡ offset (mod unit),
// correct for negative epochs too.
func quantizeDown(e, unit, offset ChainEpoch) ChainEpoch {
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

// Policy returns the constants the info was computed with.
func (d DeadlineInfo) Policy() Policy {
	return Policy{
		PeriodDeadlines:        d.WPoStPeriodDeadlines,
		ChallengeWindow:        d.WPoStChallengeWindow,
		ChallengeLookback:      d.WPoStChallengeLookback,
		FaultDeclarationCutoff: d.FaultDeclarationCutoff,
	}
}

// PeriodStarted reports whether the proving period has begun.
func (d DeadlineInfo) PeriodStarted() bool { return d.CurrentEpoch >= d.PeriodStart }

// IsOpen reports whether a proof for this deadline may land at CurrentEpoch.
func (d DeadlineInfo) IsOpen() bool { return d.CurrentEpoch >= d.Open && d.CurrentEpoch < d.Close }

// HasElapsed reports whether the deadline has closed.
func (d DeadlineInfo) HasElapsed() bool { return d.CurrentEpoch >= d.Close }

// FaultCutoffPassed reports whether faults can no longer be declared for it.
func (d DeadlineInfo) FaultCutoffPassed() bool { return d.CurrentEpoch >= d.FaultCutoff }

// PeriodEnd is the last epoch of the proving period.
func (d DeadlineInfo) PeriodEnd() ChainEpoch { return d.PeriodStart + d.WPoStProvingPeriod - 1 }

// NextPeriodStart is the first epoch of the next proving period.
func (d DeadlineInfo) NextPeriodStart() ChainEpoch { return d.PeriodStart + d.WPoStProvingPeriod }

// NextNotElapsed returns this deadline, or its next occurrence if it has
// already closed.
func (d DeadlineInfo) NextNotElapsed() DeadlineInfo {
	if !d.HasElapsed() {
		return d
	}
	periods := (d.CurrentEpoch-d.Close)/d.WPoStProvingPeriod + 1
	return NewDeadlineInfo(d.PeriodStart+periods*d.WPoStProvingPeriod, d.Index, d.CurrentEpoch, d.Policy())
}

// Validate checks that the derived fields agree with PeriodStart, Index and
// the constants, so a node answering with inconsistent data is caught
// before anything is scheduled on it.
func (d DeadlineInfo) Validate() error {
	p := d.Policy()
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
	want := NewDeadlineInfo(d.PeriodStart, d.Index, d.CurrentEpoch, p)
	if want != d {
		return fmt.Errorf("deadline info: derived fields disagree: got open %d close %d challenge %d cutoff %d, want %d %d %d %d",
			d.Open, d.Close, d.Challenge, d.FaultCutoff, want.Open, want.Close, want.Challenge, want.FaultCutoff)
	}
	return nil
}

// String is a one-line summary for logs.
func (d DeadlineInfo) String() string {
	return fmt.Sprintf("deadline %d of period %d (open %d, close %d, challenge %d, cutoff %d, at %d)",
		d.Index, d.PeriodStart, d.Open, d.Close, d.Challenge, d.FaultCutoff, d.CurrentEpoch)
}
