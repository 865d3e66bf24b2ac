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

	"github.com/multiformats/go-multihash"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/ipfs/go-cid"

	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
)

// ChainEpoch is abi.ChainEpoch, repeated for brevity.
type ChainEpoch = abi.ChainEpoch

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
	// MessagesRefused counts pushes refused at estimation (nothing landed);
	// MessagesFailed counts messages that landed with a non-zero exit code.
	MessagesRefused int
	MessagesFailed  int
}

type partitionState struct {
	All        bitfield.BitField
	Faulty     bitfield.BitField
	Recovering bitfield.BitField
}

// active is what must be proven: live sectors that are not faulty.
func (p *partitionState) active() bitfield.BitField {
	return stateBits(bitfield.SubtractBitField(p.All, p.Faulty))
}

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
	SectorSize    abi.SectorSize
	SealProof     abi.RegisteredSealProof
	PoStProof     abi.RegisteredPoStProof
	PartitionSize uint64
	Offset        ChainEpoch
	SectorDir     string
	Sectors       []sectorState
	Deadlines     []*deadlineState

	commR map[uint64][32]byte // derived from Sectors on load
}

// msgRecord is a pushed message: pending until a tipset includes it, then
// its receipt.
type msgRecord struct {
	CID    string
	From   uint64
	To     uint64
	Method abi.MethodNum
	Nonce  uint64
	// Height is the epoch of the tipset that included (and executed) the
	// message; while Pending, the head it was pushed at.
	Height   ChainEpoch
	Pending  bool   `json:",omitempty"`
	ExitCode int    // of the receipt
	Reason   string `json:",omitempty"` // the actor's message when ExitCode != 0
	Params   []byte `json:",omitempty"` // kept until executed, then dropped
	MsgUuid  string `json:",omitempty"`

	// The proof check that passed at estimation (not persisted: after a
	// restart the proof is checked again when it executes).
	verified    [32]byte
	hasVerified bool
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
	Pending     []string          // CIDs of pushed messages not yet included, in push order
	UUIDs       map[string]string // MessageSendSpec.MsgUuid -> CID
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
	// wins holds the gateway's outcomes of rounds not yet judged.
	wins map[winKey]*submitted
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
		wins:     map[winKey]*submitted{},
	}
	if c.st.Messages == nil {
		c.st.Messages = map[string]*msgRecord{}
	}
	if c.st.Nonces == nil {
		c.st.Nonces = map[uint64]uint64{}
	}
	if c.st.UUIDs == nil {
		c.st.UUIDs = map[string]string{}
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
		dl.Partitions = append(dl.Partitions, &partitionState{All: bitfield.NewFromSet(nums), Faulty: bitfield.New(), Recovering: bitfield.New()})
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

func (c *chain) deadlineAt(m *minerState, epoch ChainEpoch) dline.Info {
	return *fullnode.DeadlineAt(m.Offset, epoch, c.policy)
}

// headChanged returns a channel closed at the next head change.
func (c *chain) headChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.headCh
}

// advance moves the head one epoch: it runs the cron of the previous epoch
// (judging every deadline whose window ended with it), then executes the
// messages the new tipset includes, at its epoch. That is the real order:
// a tipset's messages, then its cron.
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
	c.executePendingLocked(h)
	c.dirty = true
	close(c.headCh)
	c.headCh = make(chan struct{})
	return recs
}

// closeDeadline ends a challenge window: unproven partitions with active
// sectors are missed and their sectors become faulty (the chain's
// "detected faults"); unproven recoveries are retracted.
func (c *chain) closeDeadline(m *minerState, di dline.Info) (DeadlineRecord, bool) {
	dl := m.Deadlines[di.Index]
	defer func() {
		dl.PostSubmissions = bitfield.New()
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
		rec.Sectors += stateBits(p.All.Count())
		if stateBits(dl.PostSubmissions.IsSet(uint64(i))) {
			rec.ProvenPartitions++
		} else {
			if act := p.active(); !stateBits(act.IsEmpty()) {
				rec.MissedPartitions++
				p.Faulty = stateBits(bitfield.MergeBitFields(p.Faulty, act))
			}
			p.Recovering = bitfield.New()
		}
		rec.FaultySectors += stateBits(p.Faulty.Count())
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

func (c *chain) blockCID(h ChainEpoch) cid.Cid {
	sum := sha256.Sum256(fmt.Appendf(nil, "vsm-devnet/block/%s/%d", c.seed, h))
	// The last 8 bytes carry the height, so a key we handed out resolves
	// back to its height without keeping an index of every tipset.
	binary.BigEndian.PutUint64(sum[24:], uint64(h))
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256) // a known code and a 32-byte digest: cannot fail
	return cid.NewCidV1(cid.DagCBOR, mh)
}

// resolveTSK returns the height a key names (the head for an empty key).
func (c *chain) resolveTSK(tsk fullnode.TipSetKey) (ChainEpoch, error) {
	if len(tsk) == 0 {
		return c.st.Height, nil
	}
	if len(tsk) != 1 {
		return 0, fmt.Errorf("tipset %s not found: devnet tipsets have one block", tsk)
	}
	dec, err := multihash.Decode(tsk[0].Hash())
	if err != nil || len(dec.Digest) != 32 {
		return 0, fmt.Errorf("tipset %s not found", tsk)
	}
	h := ChainEpoch(binary.BigEndian.Uint64(dec.Digest[24:]))
	if h < 0 || h > c.st.Height || !c.blockCID(h).Equals(tsk[0]) {
		return 0, fmt.Errorf("tipset %s not found", tsk)
	}
	return h, nil
}

func (c *chain) tipset(h ChainEpoch, genesisUnix int64, blockSecs float64) fullnode.TipSet {
	block := c.blockCID(h)
	var parents []cid.Cid
	if h > 0 {
		parents = []cid.Cid{c.blockCID(h - 1)}
	}
	var miner address.Address
	if ms := c.sortedMiners(); len(ms) > 0 {
		miner = fullnode.IDAddress(ms[int(h)%len(ms)].ID)
	}
	return fullnode.TipSet{
		Cids:   []cid.Cid{block},
		Height: h,
		Blocks: []fullnode.BlockHeader{{
			Miner: miner, Height: h, Parents: parents,
			Timestamp: uint64(genesisUnix + int64(float64(h)*blockSecs)),
		}},
	}
}

// draw is Lotus's DrawRandomness (blake2b-256 of tag, blake2b-256 of the
// base, epoch and entropy: fullnode.DrawRandomnessFromBase, which miners
// use on the beacon entry of their round).
func draw(base [32]byte, tag crypto.DomainSeparationTag, epoch ChainEpoch, entropy []byte) []byte {
	r := fullnode.DrawRandomnessFromBase(base[:], tag, epoch, entropy)
	return r[:]
}

// beaconBase is the devnet's beacon value of an epoch (its stand-in for a
// drand round): the base of every beacon randomness drawn at that epoch.
func (c *chain) beaconBase(epoch ChainEpoch) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "vsm-devnet/%s/%s/%d", "beacon", c.seed, epoch))
}

func (c *chain) randomness(kind string, tag crypto.DomainSeparationTag, epoch ChainEpoch, entropy []byte, tsk fullnode.TipSetKey) ([]byte, error) {
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
func (c *chain) randomnessLocked(kind string, tag crypto.DomainSeparationTag, epoch ChainEpoch, entropy []byte, at ChainEpoch) ([]byte, error) {
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

// A message reaches its receipt as on a Lotus chain. MpoolPushMessage
// first estimates it: it runs the message against the current state (after
// the sender's own pending messages, as Lotus's gas estimation does) at
// the epoch of the next tipset, and refuses the push with the actor's exit
// code and message if it fails. A message that passes is pending; the next
// tipset includes it and executes it at its own epoch, where it may still
// fail (the deadline closed meanwhile, another message proved the same
// partition first), which shows as a non-zero exit code in its receipt.
// The receipt is found in the tipset after the inclusion one, the
// "execution tipset" Lotus's StateSearchMsg and StateWaitMsg report.

// pushMessage estimates msg and, if it passes, adds it to the pending
// messages. Proof verification runs without the lock, so a slow check
// never stalls the chain.
func (c *chain) pushMessage(ctx context.Context, msg *fullnode.Message, uuid string) (*msgRecord, error) {
	c.mu.Lock()
	if rec, ok := c.byUUIDLocked(uuid); ok {
		c.mu.Unlock()
		return rec, nil
	}
	from, err := address.IDFromAddress(msg.From)
	if err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("sender %s: the devnet's actors have ID addresses only: %w", msg.From, err)
	}
	call := msgCall{From: from, Method: msg.Method, Params: msg.Params}
	to, err := address.IDFromAddress(msg.To)
	m, ok := c.miners[to]
	if err != nil || !ok {
		c.st.Totals.MessagesRefused++
		c.mu.Unlock()
		return nil, estimateErr(&ExecError{ExitCode: ExitSysInvalidReceiver, Reason: fmt.Sprintf("actor %s not found", msg.To), Receiver: to, Method: msg.Method})
	}
	epoch := c.st.Height + 1
	dls := m.Deadlines
	for _, cid := range c.st.Pending {
		prior := c.st.Messages[cid]
		if prior.From != call.From || prior.To != m.ID {
			continue
		}
		// A prior message that would fail changes nothing; its proof is
		// trusted here and verified when it executes.
		if ex, err := c.runCall(m, dls, prior.call(), epoch); err == nil {
			dls = ex.deadlines
		}
	}
	ex, xerr := c.runCall(m, dls, call, epoch)
	c.mu.Unlock()
	if xerr == nil && ex.verify != nil {
		if err := c.verifier.VerifyWindowPoSt(ctx, *ex.verify); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("verifying window post: %w", ctx.Err())
			}
			if errors.Is(err, ErrVerifierUnavailable) {
				// The devnet could not judge the proof: its fault, not the
				// sender's. No real chain answers this; the push fails
				// without an exit code and may be retried.
				return nil, fmt.Errorf("devnet: %w", err)
			}
			xerr = invalidPoSt(m, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if xerr != nil {
		c.st.Totals.MessagesRefused++
		c.log.Info("message refused at estimation", zap.Uint64("miner", m.ID), zap.Uint64("method", uint64(call.Method)),
			zap.Int("exit_code", xerr.ExitCode), zap.String("reason", xerr.Reason))
		return nil, estimateErr(xerr)
	}
	if rec, ok := c.byUUIDLocked(uuid); ok {
		return rec, nil // a concurrent push with the same MsgUuid won
	}
	nonce := c.st.Nonces[call.From]
	c.st.Nonces[call.From] = nonce + 1
	signed := *msg
	signed.Nonce = nonce
	body, err := json.Marshal(&signed)
	if err != nil {
		return nil, fmt.Errorf("encoding message: %w", err)
	}
	sum := sha256.Sum256(body)
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256) // cannot fail
	rec := &msgRecord{
		CID:     cid.NewCidV1(cid.DagCBOR, mh).String(),
		From:    call.From,
		To:      m.ID,
		Method:  call.Method,
		Nonce:   nonce,
		Height:  c.st.Height,
		Pending: true,
		Params:  msg.Params,
		MsgUuid: uuid,
	}
	if ex.verify != nil {
		rec.verified = verifyKey(ex.verify)
		rec.hasVerified = true
	}
	c.st.Messages[rec.CID] = rec
	c.st.Pending = append(c.st.Pending, rec.CID)
	if uuid != "" {
		c.st.UUIDs[uuid] = rec.CID
	}
	c.dirty = true
	return rec, nil
}

func (c *chain) byUUIDLocked(uuid string) (*msgRecord, bool) {
	if uuid == "" {
		return nil, false
	}
	cid, ok := c.st.UUIDs[uuid]
	if !ok {
		return nil, false
	}
	rec, ok := c.st.Messages[cid]
	return rec, ok
}

// estimateErr wraps a refusal as Lotus's MpoolPushMessage does.
func estimateErr(e *ExecError) error {
	return fmt.Errorf("GasEstimateMessageGas error: estimating gas used: %w", e)
}

// invalidPoSt is the actor's answer to a proof its verifier rejects; the
// verifier's reason is added because the devnet has one to give.
func invalidPoSt(m *minerState, err error) *ExecError {
	return &ExecError{ExitCode: ExitIllegalArgument, Reason: fmt.Sprintf("invalid post was submitted (devnet verifier: %v)", err),
		Receiver: m.ID, Method: builtin.MethodsMiner.SubmitWindowedPoSt}
}

// executePendingLocked includes every pending message in the tipset at
// epoch and executes them in push order. A proof checked at estimation is
// not checked again unless what it must cover changed; one that must be is
// verified here, under the lock (rare: a restart, or a state change
// between estimation and inclusion).
func (c *chain) executePendingLocked(epoch ChainEpoch) {
	if len(c.st.Pending) == 0 {
		return
	}
	for _, cid := range c.st.Pending {
		rec := c.st.Messages[cid]
		call := rec.call()
		rec.Pending, rec.Height, rec.Params = false, epoch, nil
		m, ok := c.miners[rec.To]
		if !ok {
			rec.ExitCode, rec.Reason = ExitSysInvalidReceiver, fmt.Sprintf("actor t0%d not found", rec.To)
			c.st.Totals.MessagesFailed++
			continue
		}
		ex, xerr := c.runCall(m, m.Deadlines, call, epoch)
		if xerr == nil && ex.verify != nil && (!rec.hasVerified || rec.verified != verifyKey(ex.verify)) {
			if err := c.verifier.VerifyWindowPoSt(context.Background(), *ex.verify); err != nil {
				xerr = invalidPoSt(m, err)
				if errors.Is(err, ErrVerifierUnavailable) {
					// Not the sender's fault: say so rather than "invalid post".
					xerr.ExitCode, xerr.Reason = ExitIllegalState, err.Error()
				}
			}
		}
		if xerr != nil {
			rec.ExitCode, rec.Reason = xerr.ExitCode, xerr.Reason
			c.st.Totals.MessagesFailed++
			c.log.Warn("message failed", zap.String("cid", rec.CID), zap.Uint64("miner", m.ID), zap.Uint64("method", uint64(rec.Method)),
				zap.Int64("epoch", int64(epoch)), zap.Int("exit_code", xerr.ExitCode), zap.String("reason", xerr.Reason))
			continue
		}
		m.Deadlines = ex.deadlines
		c.log.Info("message executed", zap.String("cid", rec.CID), zap.Uint64("miner", m.ID), zap.Int64("epoch", int64(epoch)), zap.String("what", ex.summary))
	}
	c.st.Pending = nil
	c.dirty = true
}

func (r *msgRecord) call() msgCall { return msgCall{From: r.From, Method: r.Method, Params: r.Params} }

// executedAt is the execution tipset of a message: the one after the
// tipset that included it, whose parent state holds its result.
func (r *msgRecord) executedAt() ChainEpoch { return r.Height + 1 }

// receiptVisibleLocked reports whether StateSearchMsg finds the receipt.
func (c *chain) receiptVisibleLocked(r *msgRecord) bool {
	return !r.Pending && c.st.Height >= r.executedAt()
}

// windowRandomnessLocked is the challenge seed a prover gets from
// StateGetRandomnessFromBeacon for this deadline, normalised.
func (c *chain) windowRandomnessLocked(m *minerState, di dline.Info, at ChainEpoch) ([32]byte, error) {
	var seed [32]byte
	r, err := c.randomnessLocked("beacon", crypto.DomainSeparationTag_WindowedPoStChallengeSeed, di.Challenge, fullnode.AddressEntropy(fullnode.IDAddress(m.ID)), at)
	if err != nil {
		return seed, err
	}
	copy(seed[:], r)
	seed[31] &= 0x3f
	return seed, nil
}

var errNoSuchMiner = errors.New("actor not found")

func (c *chain) minerLocked(a address.Address) (*minerState, error) {
	id, err := address.IDFromAddress(a)
	m, ok := c.miners[id]
	if err != nil || !ok {
		return nil, fmt.Errorf("miner %s: %w", a, errNoSuchMiner)
	}
	return m, nil
}
