// Package devnet is a simulated Filecoin chain for running and testing vsm
// on one machine. It serves the full-node JSON-RPC methods vsm uses (the
// same ones package fullnode calls) over HTTP on loopback, advances epochs
// at a chosen speed, lays out miners' sectors in deadlines and partitions
// as the miner actor does, draws deterministic randomness, verifies
// WindowPoSt submissions with a Verifier (the built-in engine's), judges
// messages by the miner actor's admission rules (actor.go), and records
// every deadline as proven, faulty or missed when it closes. Messages go
// from push (estimated, refused with the actor's exit code) to inclusion
// in the next tipset to a receipt, as on Lotus.
//
// It is not a chain: there is no consensus, no gas, no balances, no
// signatures, no history (State* calls read the current state whatever the
// tipset). See docs/devnet.md.
package devnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/filecoin-project/go-state-types/builtin"

	"github.com/filecoin-project/go-state-types/abi"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/gateway"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// File names under the devnet's directory.
const (
	StateFile   = "state.json"
	TokenFile   = "token"
	APIInfoFile = "api-info"
	// GatewayInfoFile holds the gateway stand-in's Gateway.API entry.
	GatewayInfoFile = "gateway-info"
)

// SectorCommitment is what the chain knows about a sector it challenges.
type SectorCommitment struct {
	Number uint64
	CommR  [32]byte
}

// WindowPoStVerifyInfo is one proof to check: the proof must cover exactly
// Sectors for this miner, proof type and (normalised) randomness.
type WindowPoStVerifyInfo struct {
	Miner      uint64
	ProofType  abi.RegisteredPoStProof
	Randomness [32]byte
	Sectors    []SectorCommitment
	Proof      []byte
}

// WinningPoStVerifyInfo is one WinningPoSt to check: the proof must cover
// exactly the challenged Sectors for this miner, proof type and randomness.
type WinningPoStVerifyInfo struct {
	Miner      uint64
	ProofType  abi.RegisteredPoStProof // a WinningPoSt type (0..4)
	Randomness [32]byte
	Sectors    []SectorCommitment
	Proof      []byte
}

// Verifier checks PoSt proofs and derives the WinningPoSt sector
// challenge, as the chain's proofs verifier does.
type Verifier interface {
	// VerifyWindowPoSt checks the one proof of a SubmitWindowedPoSt. The
	// devnet checks every proof (the actor trusts one that recovers no
	// power until someone disputes it; the devnet has no disputes).
	VerifyWindowPoSt(ctx context.Context, v WindowPoStVerifyInfo) error
	// MaxWindowPoStProofSize is the most bytes each partition of a
	// message may add to its proof; the actor refuses a proof longer than
	// this times the message's partitions. For a Groth16 engine
	// (filecoin-ffi) it is the proof type's proof_size,
	// fullnode.MaxPoStProofSize (192). The built-in engine's proofs are
	// Merkle paths, far larger, so its limit is its own (BuiltinVerifier).
	MaxWindowPoStProofSize(proofType abi.RegisteredPoStProof) (int, error)
	VerifyWinningPoSt(ctx context.Context, v WinningPoStVerifyInfo) error
	// GenerateWinningPoStSectorChallenge returns the indexes, into the
	// miner's eligible sectors sorted by number, of the sectors a
	// WinningPoSt with this randomness proves.
	GenerateWinningPoStSectorChallenge(ctx context.Context, proofType abi.RegisteredPoStProof, miner uint64, randomness [32]byte, eligible uint64) ([]uint64, error)
}

// Sealer makes a sector exist on disk and returns its replica commitment.
type Sealer interface {
	SealSector(ctx context.Context, miner, number, size uint64, dir string) ([32]byte, error)
}

// BuiltinVerifier verifies proofs of vsm's built-in engine (prover/engine),
// which are not valid on mainnet.
type BuiltinVerifier struct{}

// VerifyWindowPoSt calls engine.Verify.
func (BuiltinVerifier) VerifyWindowPoSt(_ context.Context, v WindowPoStVerifyInfo) error {
	sectors := make([]engine.SectorCommitment, len(v.Sectors))
	for i, s := range v.Sectors {
		sectors[i] = engine.SectorCommitment{ID: s.Number, CommR: s.CommR}
	}
	return engine.Verify(v.Miner, strconv.FormatInt(int64(v.ProofType), 10), v.Randomness, sectors, v.Proof)
}

// MaxWindowPoStProofSize is what one full partition takes in a built-in
// engine proof: the engine's header ("VSMWPST1", miner u64, type u8, sector
// count u32, challenges u8, depth u8 = 23 bytes), counted once per partition
// so that a message's limit covers its one header, plus per sector its
// number, comm_c, comm_r_last and ChallengesPerSector leaves with their
// Merkle paths (prover/engine/doc.go). Not a mainnet limit: a real proof
// is 192 bytes per partition.
func (BuiltinVerifier) MaxWindowPoStProofSize(t abi.RegisteredPoStProof) (int, error) {
	size, err := t.SectorSize()
	if err != nil {
		return 0, fmt.Errorf("built-in proof size: %w", err)
	}
	part, err := builtin.PoStProofWindowPoStPartitionSectors(t)
	if err != nil {
		return 0, fmt.Errorf("built-in proof size: %w", err)
	}
	geo, err := sectorfile.GeometryFor(uint64(size))
	if err != nil {
		return 0, fmt.Errorf("built-in proof size: %w", err)
	}
	const header = 8 + 8 + 1 + 4 + 1 + 1
	perSector := 8 + 2*sectorfile.NodeSize + engine.ChallengesPerSector*(1+geo.Depth)*sectorfile.NodeSize
	return header + int(part)*perSector, nil
}

// VerifyWinningPoSt calls engine.Verify with the WinningPoSt type.
func (BuiltinVerifier) VerifyWinningPoSt(_ context.Context, v WinningPoStVerifyInfo) error {
	if !fullnode.IsWinningPoSt(v.ProofType) {
		return fmt.Errorf("proof type %d is not a WinningPoSt type", v.ProofType)
	}
	sectors := make([]engine.SectorCommitment, len(v.Sectors))
	for i, s := range v.Sectors {
		sectors[i] = engine.SectorCommitment{ID: s.Number, CommR: s.CommR}
	}
	return engine.Verify(v.Miner, strconv.FormatInt(int64(v.ProofType), 10), v.Randomness, sectors, v.Proof)
}

// GenerateWinningPoStSectorChallenge calls engine.WinningSectorChallenges.
func (BuiltinVerifier) GenerateWinningPoStSectorChallenge(_ context.Context, _ abi.RegisteredPoStProof, miner uint64, randomness [32]byte, eligible uint64) ([]uint64, error) {
	return engine.WinningSectorChallenges(miner, randomness, eligible)
}

// BuiltinSealer writes sectors in the built-in engine's format with
// sectorfile.Create. A sector already on disk (e.g. made earlier by `vsm
// util sector create`) is kept and its commitment read from p_aux.
type BuiltinSealer struct{}

// SealSector creates or reuses the sector under dir.
func (BuiltinSealer) SealSector(ctx context.Context, miner, number, size uint64, dir string) ([32]byte, error) {
	paths := sectorfile.LayoutPaths(dir, miner, number, false)
	if _, err := os.Stat(paths.Sealed); err == nil {
		pa, err := sectorfile.ReadPAux(paths.Cache)
		if err != nil {
			return [32]byte{}, fmt.Errorf("existing sector %s: %w", sectorfile.SectorName(miner, number), err)
		}
		return sectorfile.CommR(pa.CommC, pa.CommRLast), nil
	}
	s, err := sectorfile.Create(ctx, sectorfile.CreateOptions{Miner: miner, Number: number, Size: size, Dir: dir})
	if err != nil {
		return [32]byte{}, err
	}
	return s.CommR, nil
}

// Config configures a Devnet.
type Config struct {
	// Dir holds state.json, the token and the default sector directory.
	Dir string
	// Spec is the devnet's description (miners, sectors, policy).
	Spec *Spec
	// Verifier checks proofs; default BuiltinVerifier.
	Verifier Verifier
	// Sealer writes sectors at genesis; default BuiltinSealer.
	Sealer Sealer
	// BlockTime is the wall time per epoch reported in block timestamps;
	// Run takes its own tick. Default 30 s (mainnet).
	BlockTime time.Duration
	Logger    *zap.Logger
}

// Devnet is a running simulated chain.
type Devnet struct {
	cfg   Config
	chain *chain
	token string
	log   *zap.Logger
	hub   *gateway.Hub
}

// New opens the devnet in cfg.Dir: it resumes from state.json if present
// (refusing a state made from a different spec) or creates genesis,
// sealing every sector of the spec.
func New(ctx context.Context, cfg Config) (*Devnet, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devnet: no directory given")
	}
	if cfg.Spec == nil {
		return nil, errors.New("devnet: no spec given")
	}
	if err := cfg.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("devnet spec: %w", err)
	}
	if cfg.Verifier == nil {
		cfg.Verifier = BuiltinVerifier{}
	}
	if cfg.Sealer == nil {
		cfg.Sealer = BuiltinSealer{}
	}
	if cfg.BlockTime <= 0 {
		cfg.BlockTime = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	log := cfg.Logger.Named("devnet")
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	token, err := loadOrCreateToken(filepath.Join(cfg.Dir, TokenFile))
	if err != nil {
		return nil, err
	}
	st, err := loadState(filepath.Join(cfg.Dir, StateFile))
	switch {
	case err == nil:
		if st.Fingerprint != cfg.Spec.fingerprint() {
			return nil, fmt.Errorf("devnet: %s was created from a different spec; use a new --dir or remove it", filepath.Join(cfg.Dir, StateFile))
		}
		log.Info("resuming devnet", zap.Int64("height", int64(st.Height)), zap.Int("miners", len(st.Miners)))
	case errors.Is(err, os.ErrNotExist):
		st, err = genesis(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	c, err := newChain(st, cfg.Spec, cfg.Verifier, log)
	if err != nil {
		return nil, err
	}
	d := &Devnet{cfg: cfg, chain: c, token: token, log: log, hub: gateway.NewHub(token, log.Named("gateway"))}
	if err := d.Save(); err != nil {
		return nil, err
	}
	return d, nil
}

func genesis(ctx context.Context, cfg Config, log *zap.Logger) (persisted, error) {
	spec := cfg.Spec
	p := spec.ChainPolicy()
	st := persisted{
		Version:     stateVersion,
		Fingerprint: spec.fingerprint(),
		GenesisUnix: time.Now().Unix(),
	}
	for i := range spec.Miners {
		ms := &spec.Miners[i]
		size, _ := fullnode.ParseSectorSize(ms.SectorSize)
		post, err := fullnode.WindowPoStProofForSize(size)
		if err != nil {
			return st, err
		}
		seal, _ := fullnode.SealProofForSize(size)
		part, _ := builtin.PoStProofWindowPoStPartitionSectors(post)
		dir := ms.SectorDir
		if dir == "" {
			dir = spec.SectorDir
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cfg.Dir, dir)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return st, fmt.Errorf("devnet: sector dir: %w", err)
		}
		m := &minerState{
			ID: ms.ID, Owner: ms.Owner, Worker: ms.Worker, SectorSize: size,
			SealProof: seal, PoStProof: post, PartitionSize: part,
			Offset: spec.offset(ms), SectorDir: abs,
		}
		start := time.Now()
		for n := ms.FirstSector; n < ms.FirstSector+ms.Sectors; n++ {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			commR, err := cfg.Sealer.SealSector(ctx, ms.ID, n, uint64(size), abs)
			if err != nil {
				return st, fmt.Errorf("devnet: sealing sector %d of t0%d: %w", n, ms.ID, err)
			}
			m.Sectors = append(m.Sectors, sectorState{Number: n, CommR: hex.EncodeToString(commR[:])})
		}
		layoutMiner(m, ms.Deadlines, p.PeriodDeadlines)
		log.Info("miner sealed", zap.Uint64("miner", ms.ID), zap.Uint64("sectors", ms.Sectors),
			zap.String("sector_size", ms.SectorSize), zap.Int64("proving_period_offset", int64(m.Offset)),
			zap.String("dir", abs), zap.Duration("took", time.Since(start)))
		st.Miners = append(st.Miners, m)
	}
	return st, nil
}

func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return string(b), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("devnet token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("devnet token: %w", err)
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("devnet token: %w", err)
	}
	return tok, nil
}

func loadState(path string) (persisted, error) {
	var st persisted
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err // keeps os.ErrNotExist visible
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("devnet state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("devnet state %s: version %d, this vsm reads %d", path, st.Version, stateVersion)
	}
	return st, nil
}

// Save writes state.json atomically (temp file, fsync, rename).
func (d *Devnet) Save() error {
	d.chain.mu.Lock()
	b, err := json.Marshal(&d.chain.st)
	d.chain.dirty = false
	d.chain.mu.Unlock()
	if err != nil {
		return fmt.Errorf("devnet: encoding state: %w", err)
	}
	return writeFileAtomic(filepath.Join(d.cfg.Dir, StateFile), b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("devnet: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("devnet: syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	return nil
}

// Token is the bearer token that grants the sign permission
// (MpoolPushMessage). Reads need none, as on Lotus.
func (d *Devnet) Token() string { return d.token }

// Height returns the head epoch.
func (d *Devnet) Height() ChainEpoch {
	d.chain.mu.Lock()
	defer d.chain.mu.Unlock()
	return d.chain.st.Height
}

// Policy returns the devnet's timing constants.
func (d *Devnet) Policy() fullnode.Policy { return d.chain.policy }

// Step advances the chain n epochs at once (tests, or a manual devnet).
func (d *Devnet) Step(n int) {
	for i := 0; i < n; i++ {
		d.chain.advance()
	}
}

// Run advances one epoch per tick until ctx ends, saving the state when
// deadlines close or messages land (and at least every 50 epochs), and
// once more on the way out.
func (d *Devnet) Run(ctx context.Context, epoch time.Duration) error {
	if epoch <= 0 {
		return fmt.Errorf("devnet: epoch duration must be positive, got %s", epoch)
	}
	t := time.NewTicker(epoch)
	defer t.Stop()
	gwCtx, stopGateway := context.WithCancel(ctx)
	gwDone := make(chan struct{})
	go func() {
		defer close(gwDone)
		d.runGateway(gwCtx)
	}()
	defer func() {
		stopGateway()
		<-gwDone
	}()
	d.log.Info("devnet running", zap.Duration("epoch", epoch), zap.Int64("height", int64(d.Height())))
	sinceSave := 0
	for {
		select {
		case <-ctx.Done():
			if err := d.Save(); err != nil {
				return err
			}
			return nil
		case <-t.C:
		}
		recs := d.chain.advance()
		sinceSave++
		d.chain.mu.Lock()
		dirty := d.chain.dirty
		d.chain.mu.Unlock()
		if len(recs) > 0 || (dirty && sinceSave >= 50) {
			if err := d.Save(); err != nil {
				d.log.Error("saving devnet state", zap.Error(err))
			}
			sinceSave = 0
		}
	}
}

// Report summarises deadline outcomes.
type Report struct {
	Height  ChainEpoch
	Totals  Totals
	Records []DeadlineRecord // the most recent, oldest first
	// Winning counts elected rounds by WinningPoSt outcome; WinRecords
	// are the most recent, oldest first.
	Winning    WinTotals
	WinRecords []WinRecord
}

// String is the one-line summary `vsm devnet report` prints last.
func (r Report) String() string {
	return fmt.Sprintf("deadlines proven %d, faulty %d, missed %d", r.Totals.Proven, r.Totals.Faulty, r.Totals.Missed)
}

// WinningString is the WinningPoSt summary line of `vsm devnet report`.
func (r Report) WinningString() string {
	return fmt.Sprintf("winning posts elected %d (asked %d): proven %d, invalid %d, missed %d", r.Winning.Elected, r.Winning.Asked, r.Winning.Proven, r.Winning.Invalid, r.Winning.Missed)
}

// Report returns the totals and up to limit recent records (all if limit
// is negative).
func (d *Devnet) Report(limit int) Report {
	d.chain.mu.Lock()
	defer d.chain.mu.Unlock()
	return reportFrom(&d.chain.st, limit)
}

func reportFrom(st *persisted, limit int) Report {
	recs := st.Records
	if limit >= 0 && len(recs) > limit {
		recs = recs[len(recs)-limit:]
	}
	wins := st.WinRecords
	if limit >= 0 && len(wins) > limit {
		wins = wins[len(wins)-limit:]
	}
	return Report{Height: st.Height, Totals: st.Totals, Records: append([]DeadlineRecord{}, recs...),
		Winning: st.WinTotals, WinRecords: append([]WinRecord{}, wins...)}
}

// ReadReport reads the report from a devnet directory's saved state, for
// when the devnet is not running.
func ReadReport(dir string, limit int) (Report, error) {
	st, err := loadState(filepath.Join(dir, StateFile))
	if err != nil {
		return Report{}, fmt.Errorf("devnet report: %w", err)
	}
	return reportFrom(&st, limit), nil
}

// MinerSummary describes a devnet miner and where its sectors are.
type MinerSummary struct {
	ID                  uint64
	Worker              uint64
	Owner               uint64
	SectorSize          uint64
	WindowPoStProofType abi.RegisteredPoStProof
	PartitionSectors    uint64
	ProvingPeriodOffset ChainEpoch
	SectorDir           string
	Sectors             int
}

// Miners lists the devnet's miners.
func (d *Devnet) Miners() []MinerSummary {
	d.chain.mu.Lock()
	defer d.chain.mu.Unlock()
	var out []MinerSummary
	for _, m := range d.chain.sortedMiners() {
		out = append(out, MinerSummary{
			ID: m.ID, Worker: m.Worker, Owner: m.Owner, SectorSize: uint64(m.SectorSize),
			WindowPoStProofType: m.PoStProof, PartitionSectors: m.PartitionSize,
			ProvingPeriodOffset: m.Offset, SectorDir: m.SectorDir, Sectors: len(m.Sectors),
		})
	}
	return out
}

// MessageResult is what the devnet knows of a message pushed to it. Lotus
// keeps the actor's message of a failed message out of its receipt (it is
// in StateReplay's InvocResult.Error); tests read it here too.
type MessageResult struct {
	CID     string
	Pending bool // pushed, not yet included
	// Height is the epoch of the tipset that included and executed it;
	// StateSearchMsg reports the next one (the execution tipset).
	Height   ChainEpoch
	ExitCode int
	Reason   string
}

// Message returns the message pushed with this CID.
func (d *Devnet) Message(cid string) (MessageResult, bool) {
	d.chain.mu.Lock()
	defer d.chain.mu.Unlock()
	rec, ok := d.chain.st.Messages[cid]
	if !ok {
		return MessageResult{}, false
	}
	return MessageResult{CID: rec.CID, Pending: rec.Pending, Height: rec.Height, ExitCode: rec.ExitCode, Reason: rec.Reason}, true
}
