package fullnode

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	gobig "math/big"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"
)

// The types below are the Lotus API's own (lotus/api and lotus/chain/types,
// which are not in go-state-types), reduced to the fields vsm reads or
// writes and built on filecoin's Go types: go-address addresses, go-cid
// CIDs, go-state-types big integers, epochs and proof types, go-bitfield
// bitfields. Their JSON is Lotus's.

// TipSetKey identifies a tipset by its block CIDs; JSON is a list of
// {"/": cid}. The empty key means "the current head" to every State* method.
type TipSetKey []cid.Cid

// EmptyTSK is the empty key: evaluate at the node's head.
var EmptyTSK = TipSetKey{}

// MarshalJSON always writes a list (never null) so Lotus and venus decode it
// as a key.
func (k TipSetKey) MarshalJSON() ([]byte, error) {
	if k == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]cid.Cid(k))
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
		if !k[i].Equals(o[i]) {
			return false
		}
	}
	return true
}

// BlockHeader holds the block fields vsm reads; the rest of a Lotus block
// header is ignored on decode.
type BlockHeader struct {
	Miner     address.Address
	Parents   []cid.Cid
	Height    abi.ChainEpoch
	Timestamp uint64
}

// TipSet is ChainHead's answer.
type TipSet struct {
	Cids   []cid.Cid
	Blocks []BlockHeader
	Height abi.ChainEpoch
}

// Key returns the tipset's key.
func (t *TipSet) Key() TipSetKey { return TipSetKey(t.Cids) }

// Partition is one entry of StateMinerPartitions (Lotus api.Partition).
type Partition struct {
	AllSectors        bitfield.BitField
	FaultySectors     bitfield.BitField
	RecoveringSectors bitfield.BitField
	LiveSectors       bitfield.BitField
	ActiveSectors     bitfield.BitField
}

// Deadline is one entry of StateMinerDeadlines (Lotus api.Deadline).
// PostSubmissions holds the partitions already proven in the deadline's
// current challenge window.
type Deadline struct {
	PostSubmissions      bitfield.BitField
	DisputableProofCount uint64
	DailyFee             abi.TokenAmount
}

// MinerInfo is StateMinerInfo's answer (Lotus api.MinerInfo). The miner
// actor stores every address here in ID form.
type MinerInfo struct {
	Owner                      address.Address
	Worker                     address.Address
	NewWorker                  address.Address
	ControlAddresses           []address.Address
	WorkerChangeEpoch          abi.ChainEpoch
	PeerId                     *string //nolint:revive // wire name
	Multiaddrs                 [][]byte
	WindowPoStProofType        abi.RegisteredPoStProof
	SectorSize                 abi.SectorSize
	WindowPoStPartitionSectors uint64
	ConsensusFaultElapsed      abi.ChainEpoch
	PendingOwnerAddress        *address.Address
	Beneficiary                address.Address
	BeneficiaryTerm            *miner.BeneficiaryTerm
	PendingBeneficiaryTerm     *miner.PendingBeneficiaryChange
}

// SectorOnChainInfo is StateSectorGetInfo's answer (null for an unknown
// sector), as Lotus's chain/actors/builtin/miner.SectorOnChainInfo writes
// it.
type SectorOnChainInfo struct {
	SectorNumber          abi.SectorNumber
	SealProof             abi.RegisteredSealProof
	SealedCID             cid.Cid
	DeprecatedDealIDs     []abi.DealID
	Activation            abi.ChainEpoch
	Expiration            abi.ChainEpoch
	DealWeight            abi.DealWeight
	VerifiedDealWeight    abi.DealWeight
	InitialPledge         abi.TokenAmount
	ExpectedDayReward     abi.TokenAmount
	ExpectedStoragePledge abi.TokenAmount
	PowerBaseEpoch        abi.ChainEpoch
	ReplacedDayReward     abi.TokenAmount
	SectorKeyCID          *cid.Cid // set for snap-upgraded sectors
	Flags                 miner.SectorOnChainInfoFlags
	DailyFee              abi.TokenAmount
}

// Message is an unsigned chain message (Lotus types.Message).
type Message struct {
	Version    uint64
	To         address.Address
	From       address.Address
	Nonce      uint64
	Value      abi.TokenAmount
	GasLimit   int64
	GasFeeCap  abi.TokenAmount
	GasPremium abi.TokenAmount
	Method     abi.MethodNum
	Params     []byte // CBOR, base64 in JSON
}

// MessageSendSpec is MpoolPushMessage's send spec (Lotus api.MessageSendSpec).
type MessageSendSpec struct {
	// MaxFee bounds GasFeeCap*GasLimit, in attoFIL. Zero lets the node use
	// its configured default.
	MaxFee abi.TokenAmount
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

// ZeroIfNil returns b, or 0 when b holds no value: go-state-types writes a
// nil big.Int as "<nil>" when it is marshalled by value, which no node
// parses.
func ZeroIfNil(b big.Int) big.Int {
	if b.Nil() {
		return big.Zero()
	}
	return b
}

// attoPerFIL is 10^18.
var attoPerFIL = gobig.NewInt(0).Exp(gobig.NewInt(10), gobig.NewInt(18), nil)

// ParseFIL parses an amount as Lotus's types.ParseFIL does: a decimal
// number with an optional unit FIL (default), milliFIL, microFIL, nanoFIL,
// picoFIL, femtoFIL or attoFIL ("5 FIL", "0.5", "5 nanoFIL"). The result is
// in attoFIL; a fraction finer than one attoFIL is an error. (Lotus's
// types.FIL is not in go-state-types.)
func ParseFIL(s string) (abi.TokenAmount, error) {
	str := strings.TrimSpace(s)
	num, unit, _ := strings.Cut(str, " ")
	num, unit = strings.TrimSpace(num), strings.ToLower(strings.TrimSpace(unit))
	exp := map[string]int64{"": 18, "fil": 18, "millifil": 15, "microfil": 12, "nanofil": 9, "picofil": 6, "femtofil": 3, "attofil": 0}
	e, ok := exp[unit]
	if !ok {
		return big.Zero(), fmt.Errorf("amount %q: unknown unit %q (want FIL, milliFIL, microFIL, nanoFIL, picoFIL, femtoFIL or attoFIL)", s, unit)
	}
	r, ok := new(gobig.Rat).SetString(num)
	if !ok || r.Sign() < 0 {
		return big.Zero(), fmt.Errorf("amount %q: %q is not a non-negative decimal number", s, num)
	}
	r.Mul(r, new(gobig.Rat).SetInt(new(gobig.Int).Exp(gobig.NewInt(10), gobig.NewInt(e), nil)))
	if !r.IsInt() {
		return big.Zero(), fmt.Errorf("amount %q: finer than one attoFIL", s)
	}
	return big.NewFromGo(new(gobig.Int).Set(r.Num())), nil
}

// FILString renders attoFIL as FIL ("5 FIL", "0.000000005 FIL").
func FILString(b abi.TokenAmount) string {
	b = ZeroIfNil(b)
	r := new(gobig.Rat).SetFrac(b.Int, attoPerFIL)
	s := strings.TrimRight(strings.TrimRight(r.FloatString(18), "0"), ".")
	return s + " FIL"
}

// InvocResult is StateReplay's answer: the message's receipt and, when it
// failed, the VM's error text with the actor's message.
type InvocResult struct {
	MsgCid cid.Cid
	MsgRct *MessageReceipt
	Error  string
}

// Signature is a message signature (go-state-types crypto.Signature has a
// custom binary form; the API writes Type and Data).
type Signature struct {
	Type byte
	Data []byte
}

// SignedMessage is MpoolPushMessage's answer. Only CID is needed by vsm;
// the inner message is kept raw because the node may have rewritten From
// into a key address.
type SignedMessage struct {
	Message   json.RawMessage
	Signature Signature
	CID       cid.Cid
}

// MessageReceipt is the execution result of a message.
type MessageReceipt struct {
	ExitCode   exitcode.ExitCode
	Return     []byte
	GasUsed    int64
	EventsRoot *cid.Cid
}

// MsgLookup is StateSearchMsg/StateWaitMsg's answer.
type MsgLookup struct {
	Message   cid.Cid
	Receipt   MessageReceipt
	ReturnDec json.RawMessage
	TipSet    TipSetKey
	Height    abi.ChainEpoch
}

// IDAddress is go-address's NewIDAddress for an actor id the caller knows
// to be valid (below 2^63, as the chain assigns them): constants, ids from
// chain state and from the replicated state. It panics otherwise; parse
// untrusted input with address.NewFromString or address.NewIDAddress.
func IDAddress(id uint64) address.Address {
	a, err := address.NewIDAddress(id)
	if err != nil {
		panic(fmt.Sprintf("actor id %d: %v", id, err))
	}
	return a
}

// ActorID is the id of an ID address (1000 for t01000), or an error naming
// the address for any other protocol.
func ActorID(a address.Address) (uint64, error) {
	id, err := address.IDFromAddress(a)
	if err != nil {
		return 0, fmt.Errorf("address %s is not an ID address (t0/f0): %w", a, err)
	}
	return id, nil
}
