package devnet

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/BurntSushi/toml"

	"github.com/vsm-project/vsm/fullnode"
)

// Spec describes a devnet: its seed, timing policy and miners. It is read
// from a TOML or JSON file (by extension; TOML otherwise).
type Spec struct {
	// Seed makes randomness, proving-period offsets and tipset CIDs
	// deterministic. Default "vsm-devnet".
	Seed string `toml:"Seed" json:"Seed"`
	// SectorDir is where sectors are written (Lotus layout: sealed/,
	// cache/). Relative paths are relative to the devnet's --dir. Default
	// "sectors".
	SectorDir string `toml:"SectorDir" json:"SectorDir"`
	// FirstDueEpoch: deadlines whose challenge epoch is before it are not
	// judged, which gives the provers time to start. Default 0.
	FirstDueEpoch int64 `toml:"FirstDueEpoch" json:"FirstDueEpoch"`
	// Policy overrides the mainnet timing constants (all zero: mainnet).
	Policy PolicySpec  `toml:"Policy" json:"Policy"`
	Miners []MinerSpec `toml:"Miners" json:"Miners"`
	// Mining enables the WinningPoSt election (absent: no miner is ever
	// elected, so the gateway stand-in never sends ComputeProof).
	Mining *MiningSpec `toml:"Mining" json:"Mining,omitempty"`
	// Engine is the proof engine the devnet seals and verifies with:
	// "builtin" (default; vsm's SHA-256 engine, nothing to build) or "ffi"
	// (filecoin-ffi through vsm-ffi-prover: real sectors, real SNARKs; see
	// docs/engine.md). A devnet's sectors are of one engine.
	Engine string `toml:"Engine" json:"Engine,omitempty"`
}

// Engines a spec may name.
const (
	EngineBuiltin = "builtin"
	EngineFFI     = "ffi"
)

// MiningSpec configures the devnet's leader election.
type MiningSpec struct {
	// ExpectedLeadersPerEpoch is the mean number of elected miners per
	// epoch over the whole devnet (Filecoin's is 5). A miner's win count in
	// a round is Poisson with mean ExpectedLeadersPerEpoch times its share
	// of the devnet's committed sectors; it is elected when the count is at
	// least 1.
	ExpectedLeadersPerEpoch float64 `toml:"ExpectedLeadersPerEpoch" json:"ExpectedLeadersPerEpoch"`
	// FirstEpoch: rounds before it are not judged, which gives miners time
	// to start. Default: the spec's FirstDueEpoch.
	FirstEpoch int64 `toml:"FirstEpoch" json:"FirstEpoch"`
}

// PolicySpec overrides WindowPoSt timing; zero fields keep mainnet values.
type PolicySpec struct {
	PeriodDeadlines        uint64 `toml:"PeriodDeadlines" json:"PeriodDeadlines"`
	ChallengeWindow        int64  `toml:"ChallengeWindow" json:"ChallengeWindow"`
	ChallengeLookback      int64  `toml:"ChallengeLookback" json:"ChallengeLookback"`
	FaultDeclarationCutoff int64  `toml:"FaultDeclarationCutoff" json:"FaultDeclarationCutoff"`
}

// MinerSpec is one miner actor.
type MinerSpec struct {
	// ID is the actor id (1000 for t01000).
	ID uint64 `toml:"ID" json:"ID"`
	// Worker and Owner are account actor ids; default Worker = 100 + the
	// miner's position in the spec, Owner = Worker.
	Worker uint64 `toml:"Worker" json:"Worker"`
	Owner  uint64 `toml:"Owner" json:"Owner"`
	// SectorSize is "2KiB", "8MiB" or "512MiB" (sizes the built-in sealer
	// writes). Default 2KiB.
	SectorSize string `toml:"SectorSize" json:"SectorSize"`
	// Sectors is how many sectors to seal, numbered FirstSector,
	// FirstSector+1, ...
	Sectors     uint64 `toml:"Sectors" json:"Sectors"`
	FirstSector uint64 `toml:"FirstSector" json:"FirstSector"`
	// ProvingPeriodOffset fixes when the miner's periods start (epoch mod
	// proving period). Default: derived from Seed and ID, as the chain
	// derives it from the address.
	ProvingPeriodOffset *int64 `toml:"ProvingPeriodOffset" json:"ProvingPeriodOffset"`
	// Deadlines restricts which deadline indexes receive partitions
	// (default all), e.g. to keep a test's sectors in a few deadlines.
	Deadlines []uint64 `toml:"Deadlines" json:"Deadlines"`
	// SectorDir overrides Spec.SectorDir for this miner.
	SectorDir string `toml:"SectorDir" json:"SectorDir"`
}

// LoadSpec reads and validates a spec file.
func LoadSpec(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devnet spec: %w", err)
	}
	var s Spec
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("devnet spec %s: %w", path, err)
		}
	} else {
		md, err := toml.Decode(string(raw), &s)
		if err != nil {
			return nil, fmt.Errorf("devnet spec %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return nil, fmt.Errorf("devnet spec %s: unknown key %q", path, und[0].String())
		}
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("devnet spec %s: %w", path, err)
	}
	return &s, nil
}

// ChainPolicy returns the timing policy with overrides applied.
func (s *Spec) ChainPolicy() fullnode.Policy {
	p := fullnode.MainnetPolicy()
	if s.Policy.PeriodDeadlines != 0 {
		p.PeriodDeadlines = s.Policy.PeriodDeadlines
	}
	if s.Policy.ChallengeWindow != 0 {
		p.ChallengeWindow = abi.ChainEpoch(s.Policy.ChallengeWindow)
	}
	if s.Policy.ChallengeLookback != 0 {
		p.ChallengeLookback = abi.ChainEpoch(s.Policy.ChallengeLookback)
	}
	if s.Policy.FaultDeclarationCutoff != 0 {
		p.FaultDeclarationCutoff = abi.ChainEpoch(s.Policy.FaultDeclarationCutoff)
	}
	return p
}

func (s *Spec) seed() string {
	if s.Seed == "" {
		return "vsm-devnet"
	}
	return s.Seed
}

// Validate checks the spec and fills defaults in place.
func (s *Spec) Validate() error {
	if s.SectorDir == "" {
		s.SectorDir = "sectors"
	}
	p := s.ChainPolicy()
	if err := p.Validate(); err != nil {
		return err
	}
	if p.ChallengeLookback >= p.ChallengeWindow*abi.ChainEpoch(p.PeriodDeadlines) {
		return fmt.Errorf("policy: ChallengeLookback %d must be shorter than the proving period", p.ChallengeLookback)
	}
	if len(s.Miners) == 0 {
		return fmt.Errorf("no miners")
	}
	switch s.Engine {
	case "", EngineBuiltin, EngineFFI:
	default:
		return fmt.Errorf("Engine %q: want %q (default) or %q", s.Engine, EngineBuiltin, EngineFFI)
	}
	if m := s.Mining; m != nil {
		if !(m.ExpectedLeadersPerEpoch > 0 && m.ExpectedLeadersPerEpoch <= 100) {
			return fmt.Errorf("Mining.ExpectedLeadersPerEpoch %g must be in (0, 100]", m.ExpectedLeadersPerEpoch)
		}
		if m.FirstEpoch == 0 {
			m.FirstEpoch = s.FirstDueEpoch
		}
	}
	seen := map[uint64]bool{}
	for i := range s.Miners {
		m := &s.Miners[i]
		where := fmt.Sprintf("Miners[%d] (t0%d)", i, m.ID)
		if m.ID == 0 {
			return fmt.Errorf("Miners[%d]: ID is required (e.g. 1000 for t01000)", i)
		}
		if seen[m.ID] {
			return fmt.Errorf("%s: duplicate miner id", where)
		}
		seen[m.ID] = true
		if m.Worker == 0 {
			m.Worker = 100 + uint64(i)
		}
		if m.Owner == 0 {
			m.Owner = m.Worker
		}
		if seen[m.Worker] && m.Worker != m.Owner {
			return fmt.Errorf("%s: worker t0%d collides with a miner id", where, m.Worker)
		}
		if m.SectorSize == "" {
			m.SectorSize = "2KiB"
		}
		if _, err := fullnode.ParseSectorSize(m.SectorSize); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if m.ProvingPeriodOffset != nil && (*m.ProvingPeriodOffset < 0 || abi.ChainEpoch(*m.ProvingPeriodOffset) >= p.ProvingPeriod()) {
			return fmt.Errorf("%s: ProvingPeriodOffset %d outside [0, %d)", where, *m.ProvingPeriodOffset, p.ProvingPeriod())
		}
		for _, d := range m.Deadlines {
			if d >= p.PeriodDeadlines {
				return fmt.Errorf("%s: deadline %d out of range [0, %d)", where, d, p.PeriodDeadlines)
			}
		}
	}
	return nil
}

// offset returns the miner's proving period offset.
func (s *Spec) offset(m *MinerSpec) abi.ChainEpoch {
	if m.ProvingPeriodOffset != nil {
		return abi.ChainEpoch(*m.ProvingPeriodOffset)
	}
	h := sha256.New()
	h.Write([]byte("vsm-devnet/offset/" + s.seed()))
	_ = binary.Write(h, binary.BigEndian, m.ID)
	v := binary.BigEndian.Uint64(h.Sum(nil))
	return abi.ChainEpoch(v % uint64(s.ChainPolicy().ProvingPeriod()))
}

// fingerprint identifies a spec, so a state dir is not reused with another.
func (s *Spec) fingerprint() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}
