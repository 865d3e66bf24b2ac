package fullnode

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"github.com/vsm-project/vsm/fullnode/bitfield"
)

// ChainEpoch is a chain height. It is signed because deadline arithmetic
// (a period start before genesis, Open - lookback) goes below zero.
type ChainEpoch int64

// SectorNumber identifies a sector within its miner.
type SectorNumber = uint64

// TipSetKey identifies a tipset by its block CIDs; JSON is a list of
// {"/": cid}. The empty key means "the current head" to every State* method.
type TipSetKey []CID

// EmptyTSK is the empty key: evaluate at the node's head.
var EmptyTSK = TipSetKey{}

// MarshalJSON always writes a list (never null) so Lotus and venus decode it
// as a key.
func (k TipSetKey) MarshalJSON() ([]byte, error) {
	if k == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]CID(k))
}

// String joins the CIDs, for logs.
func (k TipSetKey) String() string {
	parts := make([]string, len(k))
	for i, c := range k {
		parts[i] = c.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Equal compares keys element-wise.
func (k TipSetKey) Equal(o TipSetKey) bool {
	if len(k) != len(o) {
		return false
	}
	for i := range k {
		if !k[i].Equal(o[i]) {
			return false
		}
	}
	return true
}

// BlockHeader holds the block fields vsm reads and, for a mined block, the
// ones it fills (Ticket, ElectionProof, BeaconEntries, WinPoStProof); the
// rest of a Lotus block header (state roots, messages root, BLS aggregate,
// signature, parent weight and base fee) is ignored on decode and left out
// on encode.
type BlockHeader struct {
	Miner         Address
	Ticket        *Ticket        `json:",omitempty"`
	ElectionProof *ElectionProof `json:",omitempty"`
	BeaconEntries []BeaconEntry  `json:",omitempty"`
	WinPoStProof  []PoStProof    `json:",omitempty"`
	Parents       []CID
	Height        ChainEpoch
	Timestamp     uint64
}

// Ticket is a block's ticket (a VRF output over the previous ticket).
type Ticket struct {
	VRFProof []byte
}

// ElectionProof is a block's proof that its miner was elected leader:
// WinCount is how many times it won the round.
type ElectionProof struct {
	WinCount int64
	VRFProof []byte
}

// BlockMsg is what Filecoin.SyncSubmitBlock takes: a header and the CIDs of
// its messages.
type BlockMsg struct {
	Header        *BlockHeader
	BlsMessages   []CID
	SecpkMessages []CID
}

// TipSet is ChainHead's answer.
type TipSet struct {
	Cids   []CID
	Blocks []BlockHeader
	Height ChainEpoch
}

// Key returns the tipset's key.
func (t *TipSet) Key() TipSetKey { return TipSetKey(t.Cids) }

// BigInt is an arbitrary-precision integer, a JSON string of decimal digits
// on the wire ("0", "-12"). The zero value is 0.
type BigInt struct{ i *big.Int }

// NewBigInt returns v as a BigInt.
func NewBigInt(v int64) BigInt { return BigInt{big.NewInt(v)} }

// ParseBigInt parses decimal digits with an optional sign.
func ParseBigInt(s string) (BigInt, error) {
	i, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return BigInt{}, fmt.Errorf("big int %q: not a decimal integer", s)
	}
	return BigInt{i}, nil
}

// Int returns a copy as *big.Int.
func (b BigInt) Int() *big.Int {
	if b.i == nil {
		return new(big.Int)
	}
	return new(big.Int).Set(b.i)
}

// String is the decimal form.
func (b BigInt) String() string { return b.Int().String() }

// MarshalJSON writes a quoted decimal string.
func (b BigInt) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON accepts a quoted decimal string (the wire form) or null (0).
func (b *BigInt) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*b = BigInt{}
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("big int: want a JSON string of digits, got %.40s", data)
	}
	p, err := ParseBigInt(s)
	if err != nil {
		return err
	}
	*b = p
	return nil
}

// DomainSeparationTag personalises randomness draws (go-state-types crypto).
type DomainSeparationTag int64

// Tags used by proving.
const (
	TagTicketProduction               DomainSeparationTag = 1
	TagElectionProofProduction        DomainSeparationTag = 2
	TagWinningPoStChallengeSeed       DomainSeparationTag = 3
	TagWindowedPoStChallengeSeed      DomainSeparationTag = 4
	TagSealRandomness                 DomainSeparationTag = 5
	TagInteractiveSealChallengeSeed   DomainSeparationTag = 6
	TagWindowedPoStDeadlineAssignment DomainSeparationTag = 7
	TagMarketDealCronSeed             DomainSeparationTag = 8
	TagPoStChainCommit                DomainSeparationTag = 9
)

// Partition is one entry of StateMinerPartitions.
type Partition struct {
	AllSectors        bitfield.BitField
	FaultySectors     bitfield.BitField
	RecoveringSectors bitfield.BitField
	LiveSectors       bitfield.BitField
	ActiveSectors     bitfield.BitField
}

// Deadline is one entry of StateMinerDeadlines. PostSubmissions holds the
// partitions already proven in the deadline's current challenge window.
type Deadline struct {
	PostSubmissions      bitfield.BitField
	DisputableProofCount uint64
	DailyFee             BigInt
}

// BeneficiaryTerm is part of MinerInfo.
type BeneficiaryTerm struct {
	Quota      BigInt
	UsedQuota  BigInt
	Expiration ChainEpoch
}

// PendingBeneficiaryChange is part of MinerInfo.
type PendingBeneficiaryChange struct {
	NewBeneficiary        Address
	NewQuota              BigInt
	NewExpiration         ChainEpoch
	ApprovedByBeneficiary bool
	ApprovedByNominee     bool
}

// MinerInfo is StateMinerInfo's answer. The miner actor stores every
// address here in ID form.
type MinerInfo struct {
	Owner                      Address
	Worker                     Address
	NewWorker                  Address
	ControlAddresses           []Address
	WorkerChangeEpoch          ChainEpoch
	PeerId                     *string //nolint:revive // wire name
	Multiaddrs                 [][]byte
	WindowPoStProofType        RegisteredPoStProof
	SectorSize                 uint64
	WindowPoStPartitionSectors uint64
	ConsensusFaultElapsed      ChainEpoch
	PendingOwnerAddress        *Address
	Beneficiary                Address
	BeneficiaryTerm            *BeneficiaryTerm
	PendingBeneficiaryTerm     *PendingBeneficiaryChange
}

// SectorOnChainInfo is StateSectorGetInfo's answer (null for an unknown
// sector).
type SectorOnChainInfo struct {
	SectorNumber          SectorNumber
	SealProof             RegisteredSealProof
	SealedCID             CID
	DealIDs               []uint64
	Activation            ChainEpoch
	Expiration            ChainEpoch
	DealWeight            BigInt
	VerifiedDealWeight    BigInt
	InitialPledge         BigInt
	ExpectedDayReward     BigInt
	ExpectedStoragePledge BigInt
	PowerBaseEpoch        ChainEpoch
	ReplacedDayReward     BigInt
	SectorKeyCID          CID // defined for snap-upgraded sectors
	Flags                 uint64
	DailyFee              BigInt
}

// CommR returns the sector's replica commitment from SealedCID.
func (s *SectorOnChainInfo) CommR() ([32]byte, error) { return CommRFromSealedCID(s.SealedCID) }

// Message is an unsigned chain message.
type Message struct {
	Version    uint64
	To         Address
	From       Address
	Nonce      uint64
	Value      BigInt
	GasLimit   int64
	GasFeeCap  BigInt
	GasPremium BigInt
	Method     uint64
	Params     []byte // CBOR, base64 in JSON
}

// MessageSendSpec is MpoolPushMessage's send spec (Lotus api.MessageSendSpec).
type MessageSendSpec struct {
	// MaxFee bounds GasFeeCap*GasLimit, in attoFIL. Zero lets the node use
	// its configured default.
	MaxFee BigInt
	// MsgUuid makes a push idempotent: a node that already signed a
	// message with this id returns that message instead of a second one
	// (Lotus keeps the id in its message signer's datastore). A UUID
	// string; empty is Lotus's uuid.Nil (no idempotence).
	MsgUuid string `json:",omitempty"` //nolint:revive // wire name
	// MaximizeFeeCap sets GasFeeCap to what MaxFee allows, so the message
	// is not stuck when the base fee rises (Lotus's
	// MaximizeWindowPoStFeeCap, on by default for WindowPoSt).
	MaximizeFeeCap bool
	// GasOverEstimation, when above 0, multiplies the node's gas limit
	// estimate (GasEstimateGasLimit) before the push, like
	// venus-sector-manager's GasOverEstimation; 0 leaves the node's own
	// overestimation (Lotus's GasLimitOverestimation, 1.25). It is applied
	// by this client, never sent.
	GasOverEstimation float64 `json:"-"`
}

// NewMsgUUID returns a random (version 4) UUID for MessageSendSpec.MsgUuid.
func NewMsgUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// attoPerFIL is 10^18.
var attoPerFIL = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// ParseFIL parses an amount as Lotus's types.ParseFIL does: a decimal
// number with an optional unit FIL (default), milliFIL, microFIL, nanoFIL,
// picoFIL, femtoFIL or attoFIL ("5 FIL", "0.5", "5 nanoFIL"). The result is
// in attoFIL; a fraction finer than one attoFIL is an error.
func ParseFIL(s string) (BigInt, error) {
	str := strings.TrimSpace(s)
	num, unit, _ := strings.Cut(str, " ")
	num, unit = strings.TrimSpace(num), strings.ToLower(strings.TrimSpace(unit))
	exp := map[string]int64{"": 18, "fil": 18, "millifil": 15, "microfil": 12, "nanofil": 9, "picofil": 6, "femtofil": 3, "attofil": 0}
	e, ok := exp[unit]
	if !ok {
		return BigInt{}, fmt.Errorf("amount %q: unknown unit %q (want FIL, milliFIL, microFIL, nanoFIL, picoFIL, femtoFIL or attoFIL)", s, unit)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || r.Sign() < 0 {
		return BigInt{}, fmt.Errorf("amount %q: %q is not a non-negative decimal number", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(e), nil)))
	if !r.IsInt() {
		return BigInt{}, fmt.Errorf("amount %q: finer than one attoFIL", s)
	}
	return BigInt{new(big.Int).Set(r.Num())}, nil
}

// FILString renders attoFIL as FIL ("5 FIL", "0.000000005 FIL").
func FILString(b BigInt) string {
	r := new(big.Rat).SetFrac(b.Int(), attoPerFIL)
	s := strings.TrimRight(strings.TrimRight(r.FloatString(18), "0"), ".")
	return s + " FIL"
}

// InvocResult is StateReplay's answer: the message's receipt and, when it
// failed, the VM's error text with the actor's message.
type InvocResult struct {
	MsgCid CID
	MsgRct *MessageReceipt
	Error  string
}

// Signature is a message signature.
type Signature struct {
	Type byte
	Data []byte
}

// SignedMessage is MpoolPushMessage's answer. Only CID is needed by vsm;
// the inner message is kept raw because the node may have rewritten From
// into a key address, which Address would refuse.
type SignedMessage struct {
	Message   json.RawMessage
	Signature Signature
	CID       CID
}

// MessageReceipt is the execution result of a message.
type MessageReceipt struct {
	ExitCode   int64
	Return     []byte
	GasUsed    int64
	EventsRoot CID
}

// MsgLookup is StateSearchMsg/StateWaitMsg's answer.
type MsgLookup struct {
	Message   CID
	Receipt   MessageReceipt
	ReturnDec json.RawMessage
	TipSet    TipSetKey
	Height    ChainEpoch
}

// BeaconEntry is a drand round.
type BeaconEntry struct {
	Round uint64
	Data  []byte
}

// ExtendedSectorInfo is a sector as MinerGetBaseInfo lists it.
type ExtendedSectorInfo struct {
	SealProof    RegisteredSealProof
	SectorNumber SectorNumber
	SectorKey    CID
	SealedCID    CID
}

// MiningBaseInfo is MinerGetBaseInfo's answer, used for WinningPoSt.
// WorkerKey is a key address (BLS or secp256k1), so it stays a string.
type MiningBaseInfo struct {
	MinerPower        BigInt
	NetworkPower      BigInt
	Sectors           []ExtendedSectorInfo
	WorkerKey         string
	SectorSize        uint64
	PrevBeaconEntry   BeaconEntry
	BeaconEntries     []BeaconEntry
	EligibleForMining bool
}

// exitNames are the FVM's exit codes (go-state-types exitcode).
var exitNames = map[int64]string{
	0: "Ok", 1: "SysErrSenderInvalid", 2: "SysErrSenderStateInvalid", 4: "SysErrIllegalInstruction",
	5: "SysErrInvalidReceiver", 6: "SysErrInsufficientFunds", 7: "SysErrOutOfGas", 8: "SysErrForbidden",
	9: "SysErrIllegalActor", 10: "SysErrIllegalArgument", 16: "ErrIllegalArgument", 17: "ErrNotFound",
	18: "ErrForbidden", 19: "ErrInsufficientFunds", 20: "ErrIllegalState", 21: "ErrSerialization",
	22: "ErrUnhandledMessage", 23: "ErrUnspecified", 24: "ErrAssertionFailed", 25: "ErrReadOnly", 26: "ErrNotPayable",
}

// ExitCodeString names an exit code as Lotus prints it:
// "ErrIllegalArgument(16)".
func ExitCodeString(code int64) string {
	if n, ok := exitNames[code]; ok {
		return fmt.Sprintf("%s(%d)", n, code)
	}
	return fmt.Sprintf("%d", code)
}
