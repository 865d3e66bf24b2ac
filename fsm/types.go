// Package fsm owns vsm's replicated state: the entity types, the command
// encoding, and the raft.FSM that applies commands, snapshots and restores.
// It knows nothing of the network or the clock: every method is a pure
// function of the command log, so every member computes the same state.
package fsm

import (
	"encoding/hex"
	"fmt"
)

// Miner is a storage provider actor whose sectors vsm proves.
type Miner struct {
	ID            uint64 `json:"id"`             // actor id (the 1000 in t01000)
	SectorSize    uint64 `json:"sector_size"`    // bytes
	PoStProof     uint8  `json:"post_proof"`     // RegisteredPoStProof (WindowPoSt) number
	PartitionSize uint32 `json:"partition_size"` // sectors per partition
	Enabled       bool   `json:"enabled"`
}

// StorageInstance is a named persist store. Members may mount it at
// different local paths; Path is only the default.
type StorageInstance struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only"`
}

// SectorID names a sector cluster-wide.
type SectorID struct {
	Miner  uint64 `json:"miner"`
	Number uint64 `json:"number"`
}

func (s SectorID) String() string { return fmt.Sprintf("s-t0%d-%d", s.Miner, s.Number) }

// CommR is a sector's replica commitment.
type CommR [32]byte

// MarshalText writes CommR as hex, the way operators paste it.
func (c CommR) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(c[:])), nil }

// UnmarshalText accepts 64 hex digits; an empty string is the zero value.
func (c *CommR) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*c = CommR{}
		return nil
	}
	if len(b) != 64 {
		return fmt.Errorf("commr: want 64 hex digits, got %d characters", len(b))
	}
	if _, err := hex.Decode(c[:], b); err != nil {
		return fmt.Errorf("commr: %w", err)
	}
	return nil
}

// SectorLocation is what every PoSter read needs: which storage instances
// hold a sector's sealed file and cache directory.
type SectorLocation struct {
	SectorID
	Sealed    string `json:"sealed"` // storage instance name
	Cache     string `json:"cache"`  // storage instance name
	Upgraded  bool   `json:"upgraded,omitempty"`
	SealProof uint8  `json:"proof,omitempty"` // RegisteredSealProof number
	CommR     CommR  `json:"commr"`
}

// DeadlineKey names one of a miner's 48 deadlines.
type DeadlineKey struct {
	Miner    uint64 `json:"miner"`
	Deadline uint8  `json:"deadline"`
}

// Assignment says which member proves a deadline. Generation grows on every
// change so a runner can tell a fresh assignment from a stale one.
type Assignment struct {
	DeadlineKey
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	// Since is the chain epoch from which Node owns the deadline (the
	// scheduler's Owner.Since): 0 means long ago. A deadline handed over
	// while its window was open has the epoch of the move, or the end of the
	// window when it was too late to prove it this period; the runner does
	// not start a window before Since.
	Since int64 `json:"since,omitempty"`
}

// Outcome is how a deadline ended.
type Outcome uint8

// Deadline outcomes.
const (
	OutcomeProven Outcome = iota + 1
	OutcomeSubmitted
	OutcomeFailed
	OutcomeFaulty
)

func (o Outcome) String() string {
	switch o {
	case OutcomeProven:
		return "proven"
	case OutcomeSubmitted:
		return "submitted"
	case OutcomeFailed:
		return "failed"
	case OutcomeFaulty:
		return "faulty"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// DeadlineRecord is the outcome of one deadline in one proving period.
type DeadlineRecord struct {
	DeadlineKey
	PeriodStart  int64    `json:"period_start"`
	Outcome      Outcome  `json:"outcome"`
	Node         string   `json:"node"`
	FaultySector []uint64 `json:"faulty_sectors,omitempty"`
	DurationMS   uint64   `json:"duration_ms"`
	Message      string   `json:"message,omitempty"`
}

// WdPoStDeadlines is the number of deadlines in a proving period.
const WdPoStDeadlines = 48
