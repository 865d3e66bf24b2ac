// Package fullnode is vsm's client of the Lotus/venus full-node JSON-RPC
// API: the chain reads WindowPoSt needs (head, miner info, deadlines,
// partitions, sectors, randomness) and the messages it sends
// (SubmitWindowedPoSt, DeclareFaults), on filecoin's own Go types
// (go-state-types, go-address, go-bitfield, go-cid) with Lotus's wire
// shapes: tipset keys as CID lists, bitfields as run lengths, big integers
// as strings, message params as the miner actor's CBOR (cbor-gen).
//
// The devnet (package devnet) serves the same methods, so everything built
// on this client runs against either.
package fullnode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/ipfs/go-cid"
	cbg "github.com/whyrusleeping/cbor-gen"
	"go.uber.org/zap"
)

// RPCError is an error answer from the node.
type RPCError struct {
	Method  string
	Code    int
	Message string
	Data    json.RawMessage
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("%s: node error %d: %s", e.Method, e.Code, e.Message)
}

// ErrUnauthorized is returned (wrapped) when the node refuses the token.
var ErrUnauthorized = errors.New("unauthorized: check the token in the FULLNODE_API_INFO string")

// Client calls one full node. It is safe for concurrent use.
type Client struct {
	info        APIInfo
	http        *http.Client
	log         *zap.Logger
	id          atomic.Uint64
	callTimeout time.Duration
	// v0 is set for an endpoint ending in /rpc/v0, whose StateWaitMsg and
	// StateSearchMsg take fewer arguments than v1's.
	v0 bool
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default HTTP client.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithCallTimeout sets the limit applied to a call whose context has no
// deadline (default 30 s; 0 disables it). StateWaitMsg is exempt: waiting
// is its job, so only its context bounds it.
func WithCallTimeout(d time.Duration) Option { return func(c *Client) { c.callTimeout = d } }

// NewClient returns a client for the node described by info.
func NewClient(info APIInfo, log *zap.Logger, opts ...Option) *Client {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{
		info:        info,
		http:        &http.Client{},
		log:         log.Named("fullnode"),
		callTimeout: 30 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	c.v0 = IsV0(info.URL)
	return c
}

// IsV0 reports whether an endpoint URL is a full node's v0 API (/rpc/v0).
func IsV0(url string) bool { return strings.HasSuffix(strings.TrimRight(url, "/"), "/rpc/v0") }

// V0 reports whether the client speaks the v0 API.
func (c *Client) V0() bool { return c.v0 }

// Dial parses a FULLNODE_API_INFO string and returns a client for it. It
// does not contact the node.
func Dial(apiInfo string, log *zap.Logger, opts ...Option) (*Client, error) {
	info, err := ParseAPIInfo(apiInfo)
	if err != nil {
		return nil, err
	}
	return NewClient(info, log, opts...), nil
}

// Info returns the endpoint the client talks to.
func (c *Client) Info() APIInfo { return c.info }

type rpcRequest struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
}

type rpcResponse struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// Call invokes method with positional params and decodes the result into
// out (which may be nil). Exported so callers can reach methods this
// package has no wrapper for.
func (c *Client) Call(ctx context.Context, method string, out any, params ...any) error {
	if _, ok := ctx.Deadline(); !ok && c.callTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.callTimeout)
		defer cancel()
	}
	return c.call(ctx, method, out, params...)
}

func (c *Client) call(ctx context.Context, method string, out any, params ...any) error {
	if params == nil {
		params = []any{}
	}
	id := c.id.Add(1)
	body, err := json.Marshal(rpcRequest{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("%s: encoding params: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.info.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.info.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.info.Token)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: calling %s: %w", method, c.info.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s: reading answer: %w", method, err)
	}
	c.log.Debug("rpc call", zap.String("method", method), zap.Duration("took", time.Since(start)), zap.Int("status", resp.StatusCode))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: HTTP %d: %w", method, resp.StatusCode, ErrUnauthorized)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: HTTP %d from %s: %.200s", method, resp.StatusCode, c.info.URL, raw)
	}
	var r rpcResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("%s: answer is not JSON-RPC: %w", method, err)
	}
	if r.ID != id {
		return fmt.Errorf("%s: answer id %d, want %d", method, r.ID, id)
	}
	if r.Error != nil {
		return &RPCError{Method: method, Code: r.Error.Code, Message: r.Error.Message, Data: r.Error.Data}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("%s: decoding result: %w", method, err)
	}
	return nil
}

// ChainHead returns the current head tipset.
func (c *Client) ChainHead(ctx context.Context) (*TipSet, error) {
	var ts TipSet
	if err := c.Call(ctx, "Filecoin.ChainHead", &ts); err != nil {
		return nil, err
	}
	if len(ts.Cids) == 0 {
		return nil, fmt.Errorf("Filecoin.ChainHead: tipset without block CIDs")
	}
	return &ts, nil
}

// StateMinerInfo returns the miner's info at tsk.
func (c *Client) StateMinerInfo(ctx context.Context, maddr address.Address, tsk TipSetKey) (*MinerInfo, error) {
	var mi MinerInfo
	if err := c.Call(ctx, "Filecoin.StateMinerInfo", &mi, maddr, tsk); err != nil {
		return nil, err
	}
	return &mi, nil
}

// StateMinerProvingDeadline returns the miner's current deadline at tsk,
// checked for internal consistency.
func (c *Client) StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk TipSetKey) (*dline.Info, error) {
	var di dline.Info
	if err := c.Call(ctx, "Filecoin.StateMinerProvingDeadline", &di, maddr, tsk); err != nil {
		return nil, err
	}
	if err := ValidateDeadlineInfo(&di); err != nil {
		return nil, fmt.Errorf("Filecoin.StateMinerProvingDeadline %s: %w", maddr, err)
	}
	return &di, nil
}

// StateMinerDeadlines returns all the miner's deadlines (indexed by
// deadline index).
func (c *Client) StateMinerDeadlines(ctx context.Context, maddr address.Address, tsk TipSetKey) ([]Deadline, error) {
	var dls []Deadline
	if err := c.Call(ctx, "Filecoin.StateMinerDeadlines", &dls, maddr, tsk); err != nil {
		return nil, err
	}
	return dls, nil
}

// StateMinerPartitions returns the partitions of one deadline.
func (c *Client) StateMinerPartitions(ctx context.Context, maddr address.Address, dlIdx uint64, tsk TipSetKey) ([]Partition, error) {
	var ps []Partition
	if err := c.Call(ctx, "Filecoin.StateMinerPartitions", &ps, maddr, dlIdx, tsk); err != nil {
		return nil, err
	}
	return ps, nil
}

// StateSectorGetInfo returns a sector's on-chain info, or nil (and no
// error) if the miner has no such sector.
func (c *Client) StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk TipSetKey) (*SectorOnChainInfo, error) {
	var si *SectorOnChainInfo
	if err := c.Call(ctx, "Filecoin.StateSectorGetInfo", &si, maddr, n, tsk); err != nil {
		return nil, err
	}
	return si, nil
}

// StateMinerSectors returns the on-chain info of the miner's sectors in
// filter (every sector when filter is nil), ascending by number; numbers
// the miner does not have are left out.
func (c *Client) StateMinerSectors(ctx context.Context, maddr address.Address, filter *bitfield.BitField, tsk TipSetKey) ([]*SectorOnChainInfo, error) {
	var out []*SectorOnChainInfo
	if err := c.Call(ctx, "Filecoin.StateMinerSectors", &out, maddr, filter, tsk); err != nil {
		return nil, err
	}
	return out, nil
}

// StateGetRandomnessFromBeacon draws beacon randomness (param order as in
// the v1 API: tag, epoch, entropy, tipset).
func (c *Client) StateGetRandomnessFromBeacon(ctx context.Context, tag crypto.DomainSeparationTag, epoch abi.ChainEpoch, entropy []byte, tsk TipSetKey) ([]byte, error) {
	return c.randomness(ctx, "Filecoin.StateGetRandomnessFromBeacon", tag, epoch, entropy, tsk)
}

// StateGetRandomnessFromTickets draws ticket randomness (used for
// ChainCommitRand).
func (c *Client) StateGetRandomnessFromTickets(ctx context.Context, tag crypto.DomainSeparationTag, epoch abi.ChainEpoch, entropy []byte, tsk TipSetKey) ([]byte, error) {
	return c.randomness(ctx, "Filecoin.StateGetRandomnessFromTickets", tag, epoch, entropy, tsk)
}

func (c *Client) randomness(ctx context.Context, method string, tag crypto.DomainSeparationTag, epoch abi.ChainEpoch, entropy []byte, tsk TipSetKey) ([]byte, error) {
	if entropy == nil {
		entropy = []byte{} // base64 "" rather than null
	}
	var r []byte
	if err := c.Call(ctx, method, &r, tag, epoch, entropy, tsk); err != nil {
		return nil, err
	}
	if len(r) != 32 {
		return nil, fmt.Errorf("%s: got %d bytes of randomness, want 32", method, len(r))
	}
	return r, nil
}

// WindowPoStRandomness returns the challenge seed for a deadline, drawn
// exactly as Lotus does: beacon randomness at di.Challenge with the
// WindowedPoStChallengeSeed tag and the CBOR-encoded miner address as
// entropy. The top two bits of the last byte are cleared
// (seed[31] &= 0x3f) so the seed is a valid field element, as every prover
// expects.
func (c *Client) WindowPoStRandomness(ctx context.Context, maddr address.Address, di *dline.Info, tsk TipSetKey) ([32]byte, error) {
	var seed [32]byte
	r, err := c.StateGetRandomnessFromBeacon(ctx, crypto.DomainSeparationTag_WindowedPoStChallengeSeed, di.Challenge, AddressEntropy(maddr), tsk)
	if err != nil {
		return seed, fmt.Errorf("window post randomness for %s deadline %d: %w", maddr, di.Index, err)
	}
	copy(seed[:], r)
	seed[31] &= 0x3f
	return seed, nil
}

// MpoolPushMessage asks the node to fill gas and nonce, sign with msg.From
// and push the message. spec may be nil.
func (c *Client) MpoolPushMessage(ctx context.Context, msg *Message, spec *MessageSendSpec) (*SignedMessage, error) {
	if msg.Params == nil {
		msg.Params = []byte{}
	}
	// A nil big.Int is written "<nil>" by value; nodes want "0".
	msg.Value, msg.GasFeeCap, msg.GasPremium = ZeroIfNil(msg.Value), ZeroIfNil(msg.GasFeeCap), ZeroIfNil(msg.GasPremium)
	if spec != nil {
		spec.MaxFee = ZeroIfNil(spec.MaxFee)
	}
	if spec != nil && spec.GasOverEstimation > 0 && msg.GasLimit == 0 {
		// The node overestimates by its own factor when it estimates;
		// estimating here and setting GasLimit applies ours instead (a
		// node keeps a non-zero GasLimit). A node without the method
		// estimates as usual.
		var limit int64
		err := c.Call(ctx, "Filecoin.GasEstimateGasLimit", &limit, msg, EmptyTSK)
		var rpcErr *RPCError
		switch {
		case err == nil:
			msg.GasLimit = int64(float64(limit) * spec.GasOverEstimation)
		case errors.As(err, &rpcErr) && rpcErr.Code == codeMethodNotFound:
		default:
			return nil, fmt.Errorf("Filecoin.MpoolPushMessage: %w", err)
		}
	}
	var sm SignedMessage
	var specArg any
	if spec != nil {
		specArg = spec
	}
	if err := c.Call(ctx, "Filecoin.MpoolPushMessage", &sm, msg, specArg); err != nil {
		return nil, err
	}
	if !sm.CID.Defined() {
		return nil, fmt.Errorf("Filecoin.MpoolPushMessage: answer has no CID")
	}
	return &sm, nil
}

// EncodeParams is a message's params as the chain encodes them (cbor-gen).
func EncodeParams(p cbg.CBORMarshaler) ([]byte, error) {
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *Client) send(ctx context.Context, maddr, from address.Address, method abi.MethodNum, p cbg.CBORMarshaler, spec *MessageSendSpec) (cid.Cid, error) {
	params, err := EncodeParams(p)
	if err != nil {
		return cid.Undef, fmt.Errorf("encoding params: %w", err)
	}
	sm, err := c.MpoolPushMessage(ctx, &Message{To: maddr, From: from, Value: big.Zero(), Method: method, Params: params}, spec)
	if err != nil {
		return cid.Undef, err
	}
	return sm.CID, nil
}

// SubmitWindowedPoSt sends a SubmitWindowedPoSt message from the worker (or
// a control address) to the miner actor and returns its CID.
func (c *Client) SubmitWindowedPoSt(ctx context.Context, maddr, from address.Address, p *miner.SubmitWindowedPoStParams, spec *MessageSendSpec) (cid.Cid, error) {
	id, err := c.send(ctx, maddr, from, builtin.MethodsMiner.SubmitWindowedPoSt, p, spec)
	if err != nil {
		return cid.Undef, fmt.Errorf("submit window post for %s deadline %d: %w", maddr, p.Deadline, err)
	}
	return id, nil
}

// DeclareFaults sends a DeclareFaults message and returns its CID.
func (c *Client) DeclareFaults(ctx context.Context, maddr, from address.Address, p *miner.DeclareFaultsParams, spec *MessageSendSpec) (cid.Cid, error) {
	id, err := c.send(ctx, maddr, from, builtin.MethodsMiner.DeclareFaults, p, spec)
	if err != nil {
		return cid.Undef, fmt.Errorf("declare faults for %s: %w", maddr, err)
	}
	return id, nil
}

// DeclareFaultsRecovered sends a DeclareFaultsRecovered message and
// returns its CID.
func (c *Client) DeclareFaultsRecovered(ctx context.Context, maddr, from address.Address, p *miner.DeclareFaultsRecoveredParams, spec *MessageSendSpec) (cid.Cid, error) {
	id, err := c.send(ctx, maddr, from, builtin.MethodsMiner.DeclareFaultsRecovered, p, spec)
	if err != nil {
		return cid.Undef, fmt.Errorf("declare faults recovered for %s: %w", maddr, err)
	}
	return id, nil
}

// codeMethodNotFound is JSON-RPC's "method not found".
const codeMethodNotFound = -32601

// LookbackNoLimit is Lotus's api.LookbackNoLimit: search the whole chain.
const LookbackNoLimit abi.ChainEpoch = -1

// StateSearchMsg looks for a message's receipt without waiting; nil means
// not found (yet). On a v0 endpoint the node takes only the CID and
// searches from its head without limit, allowing replacements (v0's
// StateSearchMsg), so from, limit and allowReplaced must be those
// defaults there.
func (c *Client) StateSearchMsg(ctx context.Context, from TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*MsgLookup, error) {
	var ml *MsgLookup
	var err error
	if c.v0 {
		if len(from) != 0 || limit != LookbackNoLimit || !allowReplaced {
			return nil, fmt.Errorf("Filecoin.StateSearchMsg: the v0 API at %s searches from the head without limit, allowing replaced messages; use a /rpc/v1 endpoint for other searches", c.info.URL)
		}
		err = c.Call(ctx, "Filecoin.StateSearchMsg", &ml, msg)
	} else {
		err = c.Call(ctx, "Filecoin.StateSearchMsg", &ml, from, msg, limit, allowReplaced)
	}
	if err != nil {
		return nil, err
	}
	return ml, nil
}

// StateWaitMsg blocks on the node until the message has confidence
// confirmations. Cancel ctx to stop waiting. On a v0 endpoint the node
// takes only the CID and the confidence (v0's StateWaitMsg looks back
// without limit and allows replaced messages), so limit and allowReplaced
// must be those defaults there.
func (c *Client) StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*MsgLookup, error) {
	var ml MsgLookup
	var err error
	if c.v0 {
		if limit != LookbackNoLimit || !allowReplaced {
			return nil, fmt.Errorf("Filecoin.StateWaitMsg: the v0 API at %s waits without a lookback limit, allowing replaced messages; use a /rpc/v1 endpoint for limit %d, allowReplaced %v", c.info.URL, limit, allowReplaced)
		}
		err = c.call(ctx, "Filecoin.StateWaitMsg", &ml, msg, confidence)
	} else {
		err = c.call(ctx, "Filecoin.StateWaitMsg", &ml, msg, confidence, limit, allowReplaced)
	}
	if err != nil {
		return nil, err
	}
	return &ml, nil
}

// StateReplay re-executes an included message at tsk (empty: where it was
// included) and returns its result; InvocResult.Error holds the VM's
// failure text, with the actor's message, when the exit code is not 0.
func (c *Client) StateReplay(ctx context.Context, tsk TipSetKey, msg cid.Cid) (*InvocResult, error) {
	var r InvocResult
	if err := c.Call(ctx, "Filecoin.StateReplay", &r, tsk, msg); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReceiptError describes a receipt with a non-zero exit code: the exit code
// by name and, when the node can replay the message (StateReplay), the
// actor's own message. It is "" for exit code 0.
func (c *Client) ReceiptError(ctx context.Context, ml *MsgLookup) string {
	if ml == nil || ml.Receipt.ExitCode == 0 {
		return ""
	}
	what := "exit " + ml.Receipt.ExitCode.String()
	r, err := c.StateReplay(ctx, EmptyTSK, ml.Message)
	switch {
	case err != nil:
		c.log.Debug("replaying a failed message for its error text", zap.Stringer("message", ml.Message), zap.Error(err))
	case r.Error != "":
		what += ": " + strings.TrimSpace(r.Error)
	}
	return what
}
