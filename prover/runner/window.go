package runner

import (
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/vsm-project/vsm/fullnode"
)

// Window returns the occurrence of deadline d to work on at epoch head for
// a miner whose proving periods start at epochs congruent to periodStart:
// the current one if it has not closed yet, else the next period's.
func Window(periodStart abi.ChainEpoch, d uint64, head abi.ChainEpoch, p fullnode.Policy) dline.Info {
	pp := p.ProvingPeriod()
	start := head - mod(head-periodStart, pp)
	di := *p.NewInfo(start, d, head)
	if di.Close <= head {
		di = *p.NewInfo(start+pp, d, head)
	}
	return di
}

func mod(a, b abi.ChainEpoch) abi.ChainEpoch {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Phase is what the runner does with one deadline occurrence at an epoch.
type Phase int

// Phases of a deadline occurrence, in time order.
const (
	// PhaseIdle: nothing to do yet.
	PhaseIdle Phase = iota
	// PhaseCheck: from the opening of the deadline two before (Lotus
	// declares recoveries for deadline d+2 when d opens) until the fault
	// cutoff, check the sectors the chain holds faulty and declare the
	// readable ones recovered. No fault is declared ahead.
	PhaseCheck
	// PhaseProve: from the challenge epoch plus confidence until the
	// window closes: read the randomness, prove, submit once open.
	PhaseProve
	// PhaseNotOurs: the owner took the deadline too late to prove this
	// occurrence (its Since is at or after the close); leave it alone.
	PhaseNotOurs
)

func (p Phase) String() string {
	switch p {
	case PhaseIdle:
		return "idle"
	case PhaseCheck:
		return "check"
	case PhaseProve:
		return "prove"
	case PhaseNotOurs:
		return "not-ours"
	}
	return "phase?"
}

// PhaseAt says what to do with occurrence di at epoch head for an owner
// since epoch since (0: long ago). confidence is how many epochs after the
// challenge epoch proving starts.
func PhaseAt(di dline.Info, head, since, confidence abi.ChainEpoch) Phase {
	switch {
	case since >= di.Close:
		return PhaseNotOurs
	case head >= di.Close:
		return PhaseIdle
	case head >= di.Challenge+confidence:
		return PhaseProve
	case head >= DeclareFrom(di) && head < di.FaultCutoff:
		return PhaseCheck
	}
	return PhaseIdle
}

// DeclareFrom is the epoch from which recoveries of occurrence
// di are declared: when the deadline two before it opens (Open - 2 x
// window), as Lotus's wdpost_run does, which leaves 50 epochs on mainnet to
// land the declarations before the fault cutoff (Open - 70). On a policy
// where that would not precede the cutoff, the epoch before the cutoff.
func DeclareFrom(di dline.Info) abi.ChainEpoch {
	return min(di.Open-2*di.WPoStChallengeWindow, di.FaultCutoff-1)
}
