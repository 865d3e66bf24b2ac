package devnet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/fullnode/bitfield"
)

// ChainEpoch is fullnode.ChainEpoch, repeated for brevity.
type ChainEpoch = fullnode.ChainEpoch

// Exit codes the devnet reports, numbered as the FVM numbers them.
const (
	ExitOK                 = 0
	ExitSysInvalidReceiver = 5
	ExitIllegalArgument    = 16
	ExitNotFound           = 17
	ExitForbidden          = 18
	ExitIllegalState       = 20
	ExitSerialization      = 21
	ExitUnhandledMessage   = 22
)

// ExecError is a message the chain refused to execute. MpoolPushMessage
// returns it (as Lotus does when gas estimation executes a failing
// message), so a failed submission never lands silently.
type ExecError struct {
	ExitCode int
	Reason   string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("estimating gas used: message execution failed: exit %d: %s", e.ExitCode, e.Reason)
}

func execErr(code int, format string, args ...any) error {
	return &ExecError{ExitCode: code, Reason: fmt.Sprintf(format, args...)}
}

// Outcome of a closed deadline.
const (
	OutcomeProven = "proven" // every partition proven, no faulty sector
	OutcomeFaulty = "faulty" // every partition that needed a proof got one, but some sectors are faulty
	OutcomeMissed = "missed" // a partition with active sectors got no proof: its sectors became faulty
	OutcomeEmpty  = "empty"  // the deadline holds no sectors
)

// DeadlineRecord is the judgement of one deadline of one proving period.
type DeadlineRecord struct {
	Miner            uint64
	PeriodStart      ChainEpoch
	Index            uint64
	Open             ChainEpoch
	Close            ChainEpoch
	Outcome          string
	Partitions       int
	ProvenPartitions int
	MissedPartitions int
	Sectors          uint64
	FaultySectors    uint64
	Messages         int // accepted SubmitWindowedPoSt messages
}

// Totals count deadline outcomes since genesis.
type Totals struct {
	Proven int
	Faulty int
	Missed int
	Empty  int
}

type partitionState struct {
	All        bitfield.BitField
	Faulty     bitfield.BitField
	Recovering bitfield.BitField
}

// active is what must be proven: live sectors that are not faulty.
func (p *partitionState) active() bitfield.BitField { return bitfield.Subtract(p.All, p.Faulty) }

type deadlineState struct {
	Partitions      []*partitionState
	PostSubmissions bitfield.BitField
	Messages        int
}

type sectorState struct {
	Number    uint64
	CommR     string // hex
	Deadline  uint64
	Partition uint64
}

type minerState struct {
	ID            uint64
	Owner         uint64
	Worker        uint64
	SectorSize    uint64
	SealProof     fullnode.RegisteredSealProof
	PoStProof     fullnode.RegisteredPoStProof
	PartitionSize uint64
	Offset        ChainEpoch
	SectorDir     string
	Sectors       []sectorState
	Deadlines     []*deadlineState

	commR map[uint64][32]byte // derived from Sectors on load
}

type msgRecord struct {
	CID      string
	From     uint64
	To       uint64
	Method   uint64
	Height   ChainEpoch
	ExitCode int
}

// persisted is the whole devnet state, written to state.json.
type persisted struct {
	Version     int
	Fingerprint string
	Height      ChainEpoch
	GenesisUnix int64
	Miners      []*minerState
	Records     []DeadlineRecord
	Totals      Totals
	Messages    map[string]*msgRecord
	// WinningPoSt outcomes (see winning.go).
	WinTotals  WinTotals
	WinRecords []WinRecord
	Nonces     map[uint64]uint64
}

const stateVersion = 1

// chain is the simulated chain state machine. It does no I/O except
// verification through the Verifier; Devnet persists and serves it.
type chain struct {
	mu       sync.Mutex
	st       persisted
	policy   fullnode.Policy
	firstDue ChainEpoch
	seed     string
	miners   map[uint64]*minerState
	headCh   chan struct{} // closed and replaced whenever the head moves
	verifier Verifier
	log      *zap.Logger
	dirty    bool
	// mining is the spec's [Mining] table (nil: no miner is ever elected).
	mining *MiningSpec
	// blocks holds the blocks submitted for rounds not yet judged.
	blocks map[winKey]*submitted
}

func newChain(st persisted, spec *Spec, v Verifier, log *zap.Logger) (*chain, error) {
	c := &chain{
		st:       st,
		policy:   spec.ChainPolicy(),
		firstDue: ChainEpoch(spec.FirstDueEpoch),
		seed:     spec.seed(),
		miners:   map[uint64]*minerState{},
		headCh:   make(chan struct{}),
		verifier: v,
		log:      log,
		mining:   spec.Mining,
		blocks:   map[winKey]*submitted{},
	}
	if c.st.Messages == nil {
		c.st.Messages = map[string]*msgRecord{}
	}
	if c.st.Nonces == nil {
		c.st.Nonces = map[uint64]uint64{}
	}
	for _, m := range st.Miners {
		m.commR = make(map[uint64][32]byte, len(m.Sectors))
		for _, s := range m.Sectors {
			raw, err := hex.DecodeString(s.CommR)
			if err != nil || len(raw) != 32 {
				return nil, fmt.Errorf("state: miner t0%d sector %d: bad CommR %q", m.ID, s.Number, s.CommR)
			}
			m.commR[s.Number] = [32]byte(raw)
		}
		if uint64(len(m.Deadlines)) != c.policy.PeriodDeadlines {
			return nil, fmt.Errorf("state: miner t0%d has %d deadlines, policy says %d", m.ID, len(m.Deadlines), c.policy.PeriodDeadlines)
		}
		c.miners[m.ID] = m
	}
	return c, nil
}

// layoutMiner assigns sealed sectors to deadlines and partitions the way
// the miner actor does for a batch: full partitions, each to the deadline
// with the fewest partitions so far (ties to the lowest index), which for a
// fresh miner is round-robin over the allowed deadlines.
func layoutMiner(m *minerState, allowed []uint64, deadlines uint64) {
	m.Deadlines = make([]*deadlineState, deadlines)
	for i := range m.Deadlines {
		m.Deadlines[i] = &deadlineState{}
	}
	if len(allowed) == 0 {
		for i := uint64(0); i < deadlines; i++ {
			allowed = append(allowed, i)
		}
	}
	slices.SortFunc(m.Sectors, func(a, b sectorState) int { return cmpU64(a.Number, b.Number) })
	for start, k := 0, 0; start < len(m.Sectors); start, k = start+int(m.PartitionSize), k+1 {
		end := min(start+int(m.PartitionSize), len(m.Sectors))
		dlIdx := allowed[k%len(allowed)]
		dl := m.Deadlines[dlIdx]
		pIdx := uint64(len(dl.Partitions))
		nums := make([]uint64, 0, end-start)
		for i := start; i < end; i++ {
			m.Sectors[i].Deadline, m.Sectors[i].Partition = dlIdx, pIdx
			nums = append(nums, m.Sectors[i].Number)
		}
		dl.Partitions = append(dl.Partitions, &partitionState{All: bitfield.New(nums...)})
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *chain) sortedMiners() []*minerState {
	out := make([]*minerState, 0, len(c.miners))
	for _, m := range c.miners {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (c *chain) deadlineAt(m *minerState, epoch ChainEpoch) fullnode.DeadlineInfo {
	return fullnode.DeadlineAt(m.Offset, epoch, c.policy)
}

// headChanged returns a channel closed at the next head change.
func (c *chain) headChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.headCh
}

// advance moves the head one epoch and judges every deadline whose window
// ended with the previous epoch.
func (c *chain) advance() []DeadlineRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.st.Height + 1
	var recs []DeadlineRecord
	for _, m := range c.sortedMiners() {
		prev := c.deadlineAt(m, h-1)
		if prev.Close != h {
			continue
		}
		if rec, ok := c.closeDeadline(m, prev); ok {
			recs = append(recs, rec)
		}
	}
	c.judgeRoundLocked(h - 1)
	c.st.Height = h
	c.dirty = true
	close(c.headCh)
	c.headCh = make(chan struct{})
	return recs
}

// closeDeadline ends a challenge window: unproven partitions with active
// sectors are missed and their sectors become faulty (the chain's
// "detected faults"); unproven recoveries are retracted.
func (c *chain) closeDeadline(m *minerState, di fullnode.DeadlineInfo) (DeadlineRecord, bool) {
	dl := m.Deadlines[di.Index]
	defer func() {
		dl.PostSubmissions = bitfield.BitField{}
		dl.Messages = 0
	}()
	if di.Challenge < c.firstDue {
		return DeadlineRecord{}, false
	}
	rec := DeadlineRecord{
		Miner: m.ID, PeriodStart: di.PeriodStart, Index: di.Index, Open: di.Open, Close: di.Close,
		Partitions: len(dl.Partitions), Messages: dl.Messages,
	}
	for i, p := range dl.Partitions {
		rec.Sectors += p.All.Count()
		if dl.PostSubmissions.Has(uint64(i)) {
			rec.ProvenPartitions++
		} else {
			if act := p.active(); !act.IsEmpty() {
				rec.MissedPartitions++
				p.Faulty = bitfield.Union(p.Faulty, act)
			}
			p.Recovering = bitfield.BitField{}
		}
		rec.FaultySectors += p.Faulty.Count()
	}
	switch {
	case rec.Sectors == 0:
		rec.Outcome = OutcomeEmpty
		c.st.Totals.Empty++
	case rec.MissedPartitions > 0:
		rec.Outcome = OutcomeMissed
		c.st.Totals.Missed++
	case rec.FaultySectors > 0:
		rec.Outcome = OutcomeFaulty
		c.st.Totals.Faulty++
	default:
		rec.Outcome = OutcomeProven
		c.st.Totals.Proven++
	}
	if rec.Outcome != OutcomeEmpty {
		// Empty deadlines only count; listing them would bury the rest.
		c.st.Records = append(c.st.Records, rec)
	}
	level := zap.InfoLevel
	if rec.Outcome == OutcomeMissed {
		level = zap.WarnLevel
	}
	if rec.Outcome != OutcomeEmpty {
		c.log.Log(level, "deadline closed", zap.Uint64("miner", m.ID), zap.Uint64("deadline", di.Index),
			zap.Int64("period_start", int64(di.PeriodStart)), zap.String("outcome", rec.Outcome),
			zap.Int("partitions", rec.Partitions), zap.Int("proven", rec.ProvenPartitions),
			zap.Int("missed", rec.MissedPartitions), zap.Uint64("faulty_sectors", rec.FaultySectors))
	}
	return rec, true
}

// --- tipsets and randomness -------------------------------------------------

func (c *chain) blockCID(h ChainEpoch) fullnode.CID {
	sum := sha256.Sum256(fmt.Appendf(nil, "vsm-devnet/block/%s/%d", c.seed, h))
	// The last 8 bytes carry the height, so a key we handed out resolves
	// back to its height without keeping an index of every tipset.
	binary.BigEndian.PutUint64(sum[24:], uint64(h))
	return fullnode.NewCID(fullnode.CodecDagCBOR, fullnode.MhSHA2_256, sum[:])
}

// resolveTSK returns the height a key names (the head for an empty key).
func (c *chain) resolveTSK(tsk fullnode.TipSetKey) (ChainEpoch, error) {
	if len(tsk) == 0 {
		return c.st.Height, nil
	}
	if len(tsk) != 1 {
		return 0, fmt.Errorf("tipset %s not found: devnet tipsets have one block", tsk)
	}
	_, _, _, digest, err := tsk[0].Parts()
	if err != nil || len(digest) != 32 {
		return 0, fmt.Errorf("tipset %s not found", tsk)
	}
	h := ChainEpoch(binary.BigEndian.Uint64(digest[24:]))
	if h < 0 || h > c.st.Height || !c.blockCID(h).Equal(tsk[0]) {
		return 0, fmt.Errorf("tipset %s not found", tsk)
	}
	return h, nil
}

func (c *chain) tipset(h ChainEpoch, genesisUnix int64, blockSecs float64) fullnode.TipSet {
	cid := c.blockCID(h)
	var parents []fullnode.CID
	if h > 0 {
		parents = []fullnode.CID{c.blockCID(h - 1)}
	}
	var miner fullnode.Address
	if ms := c.sortedMiners(); len(ms) > 0 {
		miner = fullnode.NewIDAddress(ms[int(h)%len(ms)].ID)
	}
	return fullnode.TipSet{
		Cids:   []fullnode.CID{cid},
		Height: h,
		Blocks: []fullnode.BlockHeader{{
			Miner: miner, Height: h, Parents: parents,
			Timestamp: uint64(genesisUnix + int64(float64(h)*blockSecs)),
		}},
	}
}

// draw mirrors Lotus's DrawRandomness (H(tag || H(base) || epoch ||
// entropy)) with SHA-256 in place of blake2b (fullnode.DrawRandomnessFromBase,
// which miners use on the beacon entries of MinerGetBaseInfo).
func draw(base [32]byte, tag fullnode.DomainSeparationTag, epoch ChainEpoch, entropy []byte) []byte {
	r := fullnode.DrawRandomnessFromBase(base[:], tag, epoch, entropy)
	return r[:]
}

// beaconBase is the devnet's beacon value of an epoch (its stand-in for a
// drand round): the base of every beacon randomness drawn at that epoch.
func (c *chain) beaconBase(epoch ChainEpoch) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "vsm-devnet/%s/%s/%d", "beacon", c.seed, epoch))
}

func (c *chain) randomness(kind string, tag fullnode.DomainSeparationTag, epoch ChainEpoch, entropy []byte, tsk fullnode.TipSetKey) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, err := c.resolveTSK(tsk)
	if err != nil {
		return nil, err
	}
	return c.randomnessLocked(kind, tag, epoch, entropy, at)
}

// randomnessLocked draws beacon ("beacon") or ticket ("ticket") randomness
// as seen from height at.
func (c *chain) randomnessLocked(kind string, tag fullnode.DomainSeparationTag, epoch ChainEpoch, entropy []byte, at ChainEpoch) ([]byte, error) {
	if epoch > at {
		return nil, fmt.Errorf("cannot draw randomness from the future: epoch %d is after tipset height %d", epoch, at)
	}
	if epoch < 0 {
		return nil, fmt.Errorf("cannot draw randomness before genesis: epoch %d", epoch)
	}
	base := sha256.Sum256(fmt.Appendf(nil, "vsm-devnet/%s/%s/%d", kind, c.seed, epoch))
	return draw(base, tag, epoch, entropy), nil
}

// --- messages ---------------------------------------------------------------

// pendingPost is a SubmitWindowedPoSt validated but not yet verified.
type pendingPost struct {
	miner      *minerState
	di         fullnode.DeadlineInfo
	params     fullnode.SubmitWindowedPoStParams
	randomness [32]byte
	checks     []WindowPoStVerifyInfo
	proven     []bitfield.BitField // per params.Partitions entry: sectors proven
	skip       []bool              // partition already proven this window
}

// pushMessage executes a message at the current head and returns its
// receipt record. Verification of a PoSt runs without the lock, so a slow
// proof check never stalls the chain.
func (c *chain) pushMessage(ctx context.Context, msg *fullnode.Message) (*msgRecord, error) {
	c.mu.Lock()
	m, ok := c.miners[msg.To.ID()]
	if !ok || !msg.To.Defined() {
		c.mu.Unlock()
		return nil, execErr(ExitSysInvalidReceiver, "no miner actor at %s", msg.To)
	}
	if from := msg.From.ID(); !msg.From.Defined() || (from != m.Worker && from != m.Owner) {
		c.mu.Unlock()
		return nil, execErr(ExitForbidden, "caller %s is not the worker (t0%d) or owner (t0%d) of %s", msg.From, m.Worker, m.Owner, msg.To)
	}
	var err error
	switch msg.Method {
	case fullnode.MethodSubmitWindowedPoSt:
		var pp *pendingPost
		pp, err = c.prepareWindowPoSt(m, msg.Params)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		for _, chk := range pp.checks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := c.verifier.VerifyWindowPoSt(ctx, chk); err != nil {
				return nil, execErr(ExitIllegalArgument, "invalid PoSt for %s deadline %d: %v", msg.To, pp.params.Deadline, err)
			}
		}
		c.mu.Lock()
		err = c.commitWindowPoSt(pp)
	case fullnode.MethodDeclareFaults:
		err = c.declare(m, msg.Params, false)
	case fullnode.MethodDeclareFaultsRecovered:
		err = c.declare(m, msg.Params, true)
	default:
		err = execErr(ExitUnhandledMessage, "method %d is not served by the devnet miner actor (supported: 5 SubmitWindowedPoSt, 10 DeclareFaults, 11 DeclareFaultsRecovered)", msg.Method)
	}
	defer c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	nonce := c.st.Nonces[msg.From.ID()]
	c.st.Nonces[msg.From.ID()] = nonce + 1
	signed := *msg
	signed.Nonce = nonce
	body, _ := json.Marshal(&signed)
	sum := sha256.Sum256(body)
	rec := &msgRecord{
		CID:    fullnode.NewCID(fullnode.CodecDagCBOR, fullnode.MhSHA2_256, sum[:]).String(),
		From:   msg.From.ID(),
		To:     msg.To.ID(),
		Method: msg.Method,
		Height: c.st.Height,
	}
	c.st.Messages[rec.CID] = rec
	c.dirty = true
	return rec, nil
}

func (c *chain) prepareWindowPoSt(m *minerState, raw []byte) (*pendingPost, error) {
	var p fullnode.SubmitWindowedPoStParams
	if err := p.UnmarshalCBOR(raw); err != nil {
		return nil, execErr(ExitSerialization, "decoding SubmitWindowedPoStParams: %v", err)
	}
	cur := c.st.Height
	di := c.deadlineAt(m, cur)
	if p.Deadline >= c.policy.PeriodDeadlines {
		return nil, execErr(ExitIllegalArgument, "invalid deadline %d of %d", p.Deadline, c.policy.PeriodDeadlines)
	}
	if p.Deadline != di.Index {
		return nil, execErr(ExitIllegalArgument, "invalid deadline %d at epoch %d, expected %d (deadline %d is open from %d to %d)",
			p.Deadline, cur, di.Index, di.Index, di.Open, di.Close)
	}
	if di.Challenge < c.firstDue {
		return nil, execErr(ExitIllegalState, "deadline %d of period %d is before the devnet's first due epoch %d", di.Index, di.PeriodStart, c.firstDue)
	}
	// The devnet executes a message in the head tipset, so the commit
	// epoch may be the head itself (on a real chain it must be before the
	// epoch the message lands in, which is at least head+1).
	if p.ChainCommitEpoch < di.Challenge || p.ChainCommitEpoch > cur {
		return nil, execErr(ExitIllegalArgument, "chain commit epoch %d must be in [challenge %d, current %d]", p.ChainCommitEpoch, di.Challenge, cur)
	}
	want, err := c.randomnessLocked("ticket", fullnode.TagPoStChainCommit, p.ChainCommitEpoch, nil, cur)
	if err != nil {
		return nil, execErr(ExitIllegalArgument, "chain commit randomness: %v", err)
	}
	if string(want) != string(p.ChainCommitRand) {
		return nil, execErr(ExitIllegalArgument, "chain commit randomness does not match ticket randomness at epoch %d", p.ChainCommitEpoch)
	}
	if len(p.Partitions) == 0 {
		return nil, execErr(ExitIllegalArgument, "no partitions in submission")
	}
	for _, pr := range p.Proofs {
		if pr.PoStProof != m.PoStProof {
			return nil, execErr(ExitIllegalArgument, "expected proof of type %d, got %d", m.PoStProof, pr.PoStProof)
		}
	}
	dl := m.Deadlines[p.Deadline]
	pp := &pendingPost{miner: m, di: di, params: p, skip: make([]bool, len(p.Partitions)), proven: make([]bitfield.BitField, len(p.Partitions))}
	seen := map[uint64]bool{}
	var all bitfield.BitField
	fresh := 0
	for i, part := range p.Partitions {
		if part.Index >= uint64(len(dl.Partitions)) {
			return nil, execErr(ExitNotFound, "no partition %d in deadline %d (it has %d)", part.Index, p.Deadline, len(dl.Partitions))
		}
		if seen[part.Index] {
			return nil, execErr(ExitIllegalArgument, "partition %d listed twice", part.Index)
		}
		seen[part.Index] = true
		ps := dl.Partitions[part.Index]
		if !part.Skipped.IsSubsetOf(ps.All) {
			return nil, execErr(ExitIllegalArgument, "skipped sectors %v are not all in partition %d", bitfield.Subtract(part.Skipped, ps.All), part.Index)
		}
		if dl.PostSubmissions.Has(part.Index) {
			pp.skip[i] = true // the chain ignores partitions already proven
			continue
		}
		fresh++
		// What Lotus proves: live minus faulty, plus recovering.
		toProve := bitfield.Subtract(bitfield.Union(ps.active(), ps.Recovering), part.Skipped)
		pp.proven[i] = toProve
		all = bitfield.Union(all, toProve)
	}
	if fresh == 0 {
		return nil, execErr(ExitIllegalArgument, "all partitions in the submission are already proven in this window")
	}
	seed, err := c.windowRandomnessLocked(m, di)
	if err != nil {
		return nil, execErr(ExitIllegalState, "%v", err)
	}
	pp.randomness = seed
	mkCheck := func(bf bitfield.BitField, proof []byte) WindowPoStVerifyInfo {
		chk := WindowPoStVerifyInfo{Miner: m.ID, ProofType: m.PoStProof, Randomness: seed, Proof: proof}
		_ = bf.ForEach(func(n uint64) error {
			chk.Sectors = append(chk.Sectors, SectorCommitment{Number: n, CommR: m.commR[n]})
			return nil
		})
		return chk
	}
	switch {
	case all.IsEmpty():
		// Every sector skipped or faulty: nothing to verify, as on chain.
	case len(p.Proofs) == 1:
		pp.checks = append(pp.checks, mkCheck(all, p.Proofs[0].ProofBytes))
	case len(p.Proofs) == len(p.Partitions):
		// Devnet allowance: the built-in engine cannot aggregate, so one
		// proof per listed partition (in the same order) is accepted too.
		for i := range p.Partitions {
			if pp.skip[i] || pp.proven[i].IsEmpty() {
				continue
			}
			pp.checks = append(pp.checks, mkCheck(pp.proven[i], p.Proofs[i].ProofBytes))
		}
	default:
		return nil, execErr(ExitIllegalArgument, "expected exactly one proof (or one per partition), got %d for %d partitions", len(p.Proofs), len(p.Partitions))
	}
	return pp, nil
}

// windowRandomnessLocked is the challenge seed a prover gets from
// StateGetRandomnessFromBeacon for this deadline, normalised.
func (c *chain) windowRandomnessLocked(m *minerState, di fullnode.DeadlineInfo) ([32]byte, error) {
	var seed [32]byte
	r, err := c.randomnessLocked("beacon", fullnode.TagWindowedPoStChallengeSeed, di.Challenge, fullnode.NewIDAddress(m.ID).MarshalCBOR(), c.st.Height)
	if err != nil {
		return seed, err
	}
	copy(seed[:], r)
	seed[31] &= 0x3f
	return seed, nil
}

// commitWindowPoSt applies a verified submission, re-checking that the
// window did not close while the proof was being verified.
func (c *chain) commitWindowPoSt(pp *pendingPost) error {
	m := pp.miner
	now := c.deadlineAt(m, c.st.Height)
	if now.Index != pp.di.Index || now.PeriodStart != pp.di.PeriodStart {
		return execErr(ExitIllegalArgument, "deadline %d closed at epoch %d while the proof was being verified", pp.di.Index, pp.di.Close)
	}
	dl := m.Deadlines[pp.params.Deadline]
	for i, part := range pp.params.Partitions {
		if pp.skip[i] || dl.PostSubmissions.Has(part.Index) {
			continue
		}
		ps := dl.Partitions[part.Index]
		// Proven recoveries heal; skipped sectors become faulty.
		healed := bitfield.Intersect(ps.Recovering, pp.proven[i])
		ps.Faulty = bitfield.Union(bitfield.Subtract(ps.Faulty, healed), part.Skipped)
		ps.Recovering = bitfield.Subtract(bitfield.Subtract(ps.Recovering, healed), part.Skipped)
		dl.PostSubmissions = bitfield.Union(dl.PostSubmissions, bitfield.New(part.Index))
	}
	dl.Messages++
	c.log.Info("window post accepted", zap.Uint64("miner", m.ID), zap.Uint64("deadline", pp.params.Deadline),
		zap.Int("partitions", len(pp.params.Partitions)), zap.Int64("epoch", int64(c.st.Height)))
	return nil
}

// declare applies DeclareFaults or DeclareFaultsRecovered. A declaration
// targets the next occurrence of its deadline that has not closed, and is
// refused once that occurrence's fault cutoff has passed.
func (c *chain) declare(m *minerState, raw []byte, recovered bool) error {
	var p fullnode.DeclareFaultsParams
	if err := p.UnmarshalCBOR(raw); err != nil {
		return execErr(ExitSerialization, "decoding declaration params: %v", err)
	}
	if len(p.Faults) == 0 {
		return execErr(ExitIllegalArgument, "no declarations")
	}
	cur := c.st.Height
	periodStart := c.deadlineAt(m, cur).PeriodStart
	type change struct {
		ps  *partitionState
		set bitfield.BitField
	}
	var changes []change
	for _, f := range p.Faults {
		if f.Deadline >= c.policy.PeriodDeadlines {
			return execErr(ExitIllegalArgument, "invalid deadline %d", f.Deadline)
		}
		target := fullnode.NewDeadlineInfo(periodStart, f.Deadline, cur, c.policy).NextNotElapsed()
		if target.FaultCutoffPassed() {
			return execErr(ExitIllegalArgument, "invalid declaration for deadline %d: fault cutoff %d has passed at epoch %d (the deadline opens at %d)",
				f.Deadline, target.FaultCutoff, cur, target.Open)
		}
		dl := m.Deadlines[f.Deadline]
		if f.Partition >= uint64(len(dl.Partitions)) {
			return execErr(ExitNotFound, "no partition %d in deadline %d", f.Partition, f.Deadline)
		}
		ps := dl.Partitions[f.Partition]
		if !f.Sectors.IsSubsetOf(ps.All) {
			return execErr(ExitIllegalArgument, "sectors %v are not in deadline %d partition %d", bitfield.Subtract(f.Sectors, ps.All), f.Deadline, f.Partition)
		}
		if recovered && !f.Sectors.IsSubsetOf(ps.Faulty) {
			return execErr(ExitIllegalArgument, "sectors %v declared recovered are not faulty", bitfield.Subtract(f.Sectors, ps.Faulty))
		}
		changes = append(changes, change{ps, f.Sectors})
	}
	for _, ch := range changes {
		if recovered {
			ch.ps.Recovering = bitfield.Union(ch.ps.Recovering, ch.set)
		} else {
			ch.ps.Faulty = bitfield.Union(ch.ps.Faulty, ch.set)
			ch.ps.Recovering = bitfield.Subtract(ch.ps.Recovering, ch.set)
		}
	}
	what := "faults declared"
	if recovered {
		what = "recoveries declared"
	}
	c.log.Info(what, zap.Uint64("miner", m.ID), zap.Int("declarations", len(p.Faults)), zap.Int64("epoch", int64(cur)))
	return nil
}

var errNoSuchMiner = errors.New("actor not found")

func (c *chain) minerLocked(a fullnode.Address) (*minerState, error) {
	m, ok := c.miners[a.ID()]
	if !ok || !a.Defined() {
		return nil, fmt.Errorf("miner %s: %w", a, errNoSuchMiner)
	}
	return m, nil
}
