package devnet

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"

	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/gateway"
)

// JSON-RPC error codes. Lotus answers application errors with code 1.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeApp            = 1
)

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type request struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      json.RawMessage   `json:"id"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type method struct {
	sign bool // needs the token, as Lotus's "sign" permission
	call func(ctx context.Context, p params) (any, error)
}

// params decodes positional JSON-RPC params strictly: the count must
// match, so a caller with Lotus v0 param order gets a clear error.
type params struct {
	method string
	raw    []json.RawMessage
}

func (p params) decode(dst ...any) error {
	if len(p.raw) != len(dst) {
		return fmt.Errorf("%s takes %d params, got %d", p.method, len(dst), len(p.raw))
	}
	for i, d := range dst {
		if err := json.Unmarshal(p.raw[i], d); err != nil {
			return fmt.Errorf("%s param %d: %w", p.method, i+1, err)
		}
	}
	return nil
}

type invalidParams struct{ error }

// Handler returns the JSON-RPC handler, answering at /rpc/v1 and /rpc/v0,
// and the gateway stand-in's proof event API at /rpc/v2.
func (d *Devnet) Handler() http.Handler {
	v1, v0 := d.methods(), d.methodsV0()
	mux := http.NewServeMux()
	mux.Handle(gateway.RPCPath, d.hub.Handler())
	mux.HandleFunc("/rpc/v1", func(w http.ResponseWriter, r *http.Request) { d.serveRPC(w, r, v1) })
	mux.HandleFunc("/rpc/v0", func(w http.ResponseWriter, r *http.Request) { d.serveRPC(w, r, v0) })
	return mux
}

func (d *Devnet) serveRPC(w http.ResponseWriter, r *http.Request, methods map[string]method) {
	if r.Method != http.MethodPost {
		http.Error(w, "JSON-RPC wants POST", http.StatusMethodNotAllowed)
		return
	}
	authorized := false
	if hdr := r.Header.Get("Authorization"); hdr != "" {
		tok, ok := strings.CutPrefix(hdr, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(d.token)) != 1 {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		authorized = true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "reading request", http.StatusBadRequest)
		return
	}
	var req request
	resp := response{JSONRPC: "2.0"}
	if err := json.Unmarshal(body, &req); err != nil {
		resp.Error = &rpcError{Code: codeParse, Message: "parse error: " + err.Error()}
		writeJSON(w, resp)
		return
	}
	resp.ID = req.ID
	m, ok := methods[req.Method]
	switch {
	case req.Method == "":
		resp.Error = &rpcError{Code: codeInvalidRequest, Message: "no method"}
	case !ok:
		resp.Error = &rpcError{Code: codeMethodNotFound, Message: fmt.Sprintf("method '%s' not found", req.Method)}
	case m.sign && !authorized:
		resp.Error = &rpcError{Code: codeApp, Message: fmt.Sprintf("missing permission to invoke '%s' (need 'sign')", strings.TrimPrefix(req.Method, "Filecoin."))}
	default:
		start := time.Now()
		res, err := m.call(r.Context(), params{method: req.Method, raw: req.Params})
		var ip invalidParams
		switch {
		case errors.As(err, &ip):
			resp.Error = &rpcError{Code: codeInvalidParams, Message: err.Error()}
		case err != nil:
			resp.Error = &rpcError{Code: codeApp, Message: err.Error()}
		default:
			resp.Result = res
			if res == nil {
				resp.Result = json.RawMessage("null")
			}
		}
		d.log.Debug("rpc", zap.String("method", req.Method), zap.Duration("took", time.Since(start)), zap.Error(err))
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (d *Devnet) methods() map[string]method {
	c := d.chain
	read := func(f func(ctx context.Context, p params) (any, error)) method { return method{call: f} }
	bad := func(err error) error { return invalidParams{err} }

	// minerAt decodes (address, tsk) and returns the miner and the height.
	minerAt := func(p params, extra ...any) (*minerState, ChainEpoch, error) {
		var addr address.Address
		var tsk fullnode.TipSetKey
		dst := append([]any{&addr}, extra...)
		dst = append(dst, &tsk)
		if err := p.decode(dst...); err != nil {
			return nil, 0, bad(err)
		}
		h, err := c.resolveTSK(tsk)
		if err != nil {
			return nil, 0, err
		}
		m, err := c.minerLocked(addr)
		return m, h, err
	}

	return map[string]method{
		"Filecoin.Version": read(func(ctx context.Context, p params) (any, error) {
			return map[string]any{"Version": "vsm-devnet", "APIVersion": 0x020300, "BlockDelay": uint64(d.cfg.BlockTime.Seconds())}, nil
		}),
		"Filecoin.StateNetworkName": read(func(ctx context.Context, p params) (any, error) { return "vsm-devnet", nil }),
		"Filecoin.ChainHead": read(func(ctx context.Context, p params) (any, error) {
			if err := p.decode(); err != nil {
				return nil, bad(err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			ts := c.tipset(c.st.Height, c.st.GenesisUnix, d.cfg.BlockTime.Seconds())
			return &ts, nil
		}),
		"Filecoin.StateMinerInfo": read(func(ctx context.Context, p params) (any, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			m, _, err := minerAt(p)
			if err != nil {
				return nil, err
			}
			peer := "12D3KooWDevnet" + fmt.Sprint(m.ID)
			return &fullnode.MinerInfo{
				Owner: fullnode.IDAddress(m.Owner), Worker: fullnode.IDAddress(m.Worker),
				ControlAddresses: []address.Address{}, WorkerChangeEpoch: -1, PeerId: &peer,
				WindowPoStProofType: m.PoStProof, SectorSize: m.SectorSize,
				WindowPoStPartitionSectors: m.PartitionSize, ConsensusFaultElapsed: -1,
				Beneficiary:     fullnode.IDAddress(m.Owner),
				BeneficiaryTerm: &miner.BeneficiaryTerm{Quota: big.Zero(), UsedQuota: big.Zero()},
			}, nil
		}),
		"Filecoin.StateMinerProvingDeadline": read(func(ctx context.Context, p params) (any, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			m, h, err := minerAt(p)
			if err != nil {
				return nil, err
			}
			di := c.deadlineAt(m, h)
			return &di, nil
		}),
		"Filecoin.StateMinerDeadlines": read(func(ctx context.Context, p params) (any, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			m, _, err := minerAt(p)
			if err != nil {
				return nil, err
			}
			out := make([]fullnode.Deadline, len(m.Deadlines))
			for i, dl := range m.Deadlines {
				out[i] = fullnode.Deadline{PostSubmissions: dl.PostSubmissions}
			}
			return out, nil
		}),
		"Filecoin.StateMinerPartitions": read(func(ctx context.Context, p params) (any, error) {
			var idx uint64
			c.mu.Lock()
			defer c.mu.Unlock()
			m, _, err := minerAt(p, &idx)
			if err != nil {
				return nil, err
			}
			if idx >= uint64(len(m.Deadlines)) {
				return nil, fmt.Errorf("deadline index %d out of range [0, %d)", idx, len(m.Deadlines))
			}
			out := make([]fullnode.Partition, 0, len(m.Deadlines[idx].Partitions))
			for _, ps := range m.Deadlines[idx].Partitions {
				out = append(out, fullnode.Partition{
					AllSectors: ps.All, FaultySectors: ps.Faulty, RecoveringSectors: ps.Recovering,
					LiveSectors: ps.All, ActiveSectors: ps.active(),
				})
			}
			return out, nil
		}),
		"Filecoin.StateSectorGetInfo": read(func(ctx context.Context, p params) (any, error) {
			var num uint64
			c.mu.Lock()
			defer c.mu.Unlock()
			m, _, err := minerAt(p, &num)
			if err != nil {
				return nil, err
			}
			if _, ok := m.commR[num]; !ok {
				return nil, nil // Lotus answers null for an unknown sector
			}
			return m.sectorInfo(num)
		}),
		// StateMinerSectors lists the miner's sectors in the filter (all of
		// them when it is null), ascending, leaving out numbers it does not
		// have, as Lotus does. The runner reads the SealedCIDs it verifies
		// its own proofs against here.
		"Filecoin.StateMinerSectors": read(func(ctx context.Context, p params) (any, error) {
			var filter *bitfield.BitField
			c.mu.Lock()
			defer c.mu.Unlock()
			m, _, err := minerAt(p, &filter)
			if err != nil {
				return nil, err
			}
			nums := make([]uint64, 0, len(m.commR))
			for n := range m.commR {
				if filter != nil {
					if ok, err := filter.IsSet(n); err != nil {
						return nil, bad(fmt.Errorf("sector filter: %w", err))
					} else if !ok {
						continue
					}
				}
				nums = append(nums, n)
			}
			slices.Sort(nums)
			out := make([]*fullnode.SectorOnChainInfo, 0, len(nums))
			for _, n := range nums {
				si, err := m.sectorInfo(n)
				if err != nil {
					return nil, err
				}
				out = append(out, si)
			}
			return out, nil
		}),
		"Filecoin.StateGetRandomnessFromBeacon":  read(d.randomnessMethod("beacon")),
		"Filecoin.StateGetRandomnessFromTickets": read(d.randomnessMethod("ticket")),
		"Filecoin.MpoolPushMessage": {sign: true, call: func(ctx context.Context, p params) (any, error) {
			var msg fullnode.Message
			var spec *sendSpec
			if err := p.decode(&msg, &spec); err != nil {
				return nil, bad(err)
			}
			rec, err := c.pushMessage(ctx, &msg, spec.uuid())
			if err != nil {
				return nil, err
			}
			return c.signedMessage(rec)
		}},
		"Filecoin.StateSearchMsg": read(func(ctx context.Context, p params) (any, error) {
			var tsk fullnode.TipSetKey
			var cid cid.Cid
			var limit ChainEpoch
			var allowReplaced bool
			if err := p.decode(&tsk, &cid, &limit, &allowReplaced); err != nil {
				return nil, bad(err)
			}
			return c.searchMsg(cid), nil
		}),
		"Filecoin.StateWaitMsg": read(func(ctx context.Context, p params) (any, error) {
			var cid cid.Cid
			var confidence uint64
			var limit ChainEpoch
			var allowReplaced bool
			if err := p.decode(&cid, &confidence, &limit, &allowReplaced); err != nil {
				return nil, bad(err)
			}
			return c.waitMsg(ctx, cid, confidence)
		}),
		"Filecoin.StateReplay": read(func(ctx context.Context, p params) (any, error) {
			var tsk fullnode.TipSetKey
			var cid cid.Cid
			if err := p.decode(&tsk, &cid); err != nil {
				return nil, bad(err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			rec, ok := c.st.Messages[cid.String()]
			if !ok || !c.receiptVisibleLocked(rec) {
				return nil, fmt.Errorf("replaying message %s: message not found on chain", cid)
			}
			return c.replayLocked(rec), nil
		}),
		"Devnet.Report": read(func(ctx context.Context, p params) (any, error) {
			limit := 100
			if len(p.raw) > 0 {
				if err := p.decode(&limit); err != nil {
					return nil, bad(err)
				}
			}
			r := d.Report(limit)
			return &r, nil
		}),
		"Devnet.Miners": read(func(ctx context.Context, p params) (any, error) { return d.Miners(), nil }),
		// Devnet.GatewayConnections: ListenProofEvent channels per miner
		// address registered with the gateway stand-in.
		"Devnet.GatewayConnections": read(func(ctx context.Context, p params) (any, error) { return d.hub.ConnectionCounts(), nil }),
	}
}

// methodsV0 is the method set of /rpc/v0: v1's, except that Lotus's v0
// StateSearchMsg takes only the CID and StateWaitMsg the CID and the
// confidence (both search without limit and allow replaced messages), and
// the *Limited forms take a lookback limit.
func (d *Devnet) methodsV0() map[string]method {
	c := d.chain
	ms := d.methods()
	bad := func(err error) error { return invalidParams{err} }
	ms["Filecoin.StateSearchMsg"] = method{call: func(ctx context.Context, p params) (any, error) {
		var cid cid.Cid
		if err := p.decode(&cid); err != nil {
			return nil, bad(err)
		}
		return c.searchMsg(cid), nil
	}}
	ms["Filecoin.StateSearchMsgLimited"] = method{call: func(ctx context.Context, p params) (any, error) {
		var cid cid.Cid
		var limit ChainEpoch
		if err := p.decode(&cid, &limit); err != nil {
			return nil, bad(err)
		}
		return c.searchMsg(cid), nil
	}}
	ms["Filecoin.StateWaitMsg"] = method{call: func(ctx context.Context, p params) (any, error) {
		var cid cid.Cid
		var confidence uint64
		if err := p.decode(&cid, &confidence); err != nil {
			return nil, bad(err)
		}
		return c.waitMsg(ctx, cid, confidence)
	}}
	ms["Filecoin.StateWaitMsgLimited"] = method{call: func(ctx context.Context, p params) (any, error) {
		var cid cid.Cid
		var confidence uint64
		var limit ChainEpoch
		if err := p.decode(&cid, &confidence, &limit); err != nil {
			return nil, bad(err)
		}
		return c.waitMsg(ctx, cid, confidence)
	}}
	return ms
}

// searchMsg is StateSearchMsg: the receipt once the message's execution
// tipset is on chain, else nil (Lotus answers null for a message not
// (yet) on chain). The devnet keeps every message, so the lookback limit
// does not matter.
func (c *chain) searchMsg(cid cid.Cid) *fullnode.MsgLookup {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.st.Messages[cid.String()]
	if !ok || !c.receiptVisibleLocked(rec) {
		return nil
	}
	return c.lookupLocked(rec)
}

// waitMsg is StateWaitMsg: it blocks until the message's execution tipset
// has confidence tipsets on top of it.
func (c *chain) waitMsg(ctx context.Context, cid cid.Cid, confidence uint64) (*fullnode.MsgLookup, error) {
	for {
		ch := c.headChanged()
		c.mu.Lock()
		rec, ok := c.st.Messages[cid.String()]
		if !ok {
			c.mu.Unlock()
			return nil, fmt.Errorf("message %s not found: the devnet knows only messages pushed to it", cid)
		}
		if c.receiptVisibleLocked(rec) && c.st.Height >= rec.executedAt()+ChainEpoch(confidence) {
			defer c.mu.Unlock()
			return c.lookupLocked(rec), nil
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for message %s: %w", cid, ctx.Err())
		case <-ch:
		}
	}
}

func (d *Devnet) randomnessMethod(kind string) func(ctx context.Context, p params) (any, error) {
	return func(ctx context.Context, p params) (any, error) {
		var tag crypto.DomainSeparationTag
		var epoch ChainEpoch
		var entropy []byte
		var tsk fullnode.TipSetKey
		if err := p.decode(&tag, &epoch, &entropy, &tsk); err != nil {
			return nil, invalidParams{err}
		}
		return d.chain.randomness(kind, tag, epoch, entropy, tsk)
	}
}

// lookupLocked is a receipt in Lotus's MsgLookup shape. Lotus's receipt
// has no room for the actor's message (it is in StateReplay's
// InvocResult.Error), so neither has this one.
func (c *chain) lookupLocked(rec *msgRecord) *fullnode.MsgLookup {
	id, _ := cid.Decode(rec.CID) // made by the devnet from a CID
	return &fullnode.MsgLookup{
		Message: id,
		Receipt: fullnode.MessageReceipt{ExitCode: exitcode.ExitCode(rec.ExitCode), Return: []byte{}},
		TipSet:  fullnode.TipSetKey{c.blockCID(rec.executedAt())},
		Height:  rec.executedAt(),
	}
}

// invocResult is the part of Lotus's api.InvocResult the devnet can fill.
// The message's Params are dropped once it executed, so Msg has none.
type invocResult struct {
	MsgCid         cid.Cid
	Msg            *fullnode.Message
	MsgRct         *fullnode.MessageReceipt
	GasCost        *struct{}
	ExecutionTrace *struct{}
	Error          string
	Duration       int64
}

func (c *chain) replayLocked(rec *msgRecord) *invocResult {
	l := c.lookupLocked(rec)
	res := &invocResult{
		MsgCid: l.Message,
		Msg: &fullnode.Message{To: fullnode.IDAddress(rec.To), From: fullnode.IDAddress(rec.From), Nonce: rec.Nonce,
			Value: big.NewInt(0), GasFeeCap: big.NewInt(0), GasPremium: big.NewInt(0), Method: rec.Method},
		MsgRct: &l.Receipt,
	}
	if rec.ExitCode != ExitOK {
		res.Error = (&ExecError{ExitCode: rec.ExitCode, Reason: rec.Reason, Receiver: rec.To, Method: rec.Method}).Backtrace()
	}
	return res
}

// signedMessage is MpoolPushMessage's answer for a pushed message.
func (c *chain) signedMessage(rec *msgRecord) (*fullnode.SignedMessage, error) {
	id, err := cid.Decode(rec.CID)
	if err != nil {
		return nil, fmt.Errorf("message record %s: %w", rec.CID, err)
	}
	raw, err := json.Marshal(&fullnode.Message{To: fullnode.IDAddress(rec.To), From: fullnode.IDAddress(rec.From), Nonce: rec.Nonce,
		Value: big.NewInt(0), GasFeeCap: big.NewInt(0), GasPremium: big.NewInt(0), Method: rec.Method, Params: rec.Params})
	if err != nil {
		return nil, fmt.Errorf("encoding message: %w", err)
	}
	return &fullnode.SignedMessage{Message: raw, Signature: fullnode.Signature{Type: 1, Data: []byte("devnet")}, CID: id}, nil
}

// sendSpec is Lotus's api.MessageSendSpec. The devnet has no fees; it
// honours MsgUuid as Lotus does: a push that repeats one returns the
// message already pushed with it instead of sending another.
type sendSpec struct {
	MaxFee         big.Int
	MsgUuid        string //nolint:revive // wire name
	MaximizeFeeCap bool
}

const nilUUID = "00000000-0000-0000-0000-000000000000"

func (s *sendSpec) uuid() string {
	if s == nil || s.MsgUuid == nilUUID {
		return ""
	}
	return s.MsgUuid
}

// Listen opens a TCP listener, refusing non-loopback addresses unless
// allowRemote is set: the devnet has no real auth for reads.
func Listen(addr string, allowRemote bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("devnet listen address %q: %w", addr, err)
	}
	if !allowRemote {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("devnet listen address %q is not loopback; the devnet serves reads without a token, so it only listens on 127.0.0.1/::1 unless told otherwise", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	return ln, nil
}

// APIInfo returns the FULLNODE_API_INFO string for a listener address.
func (d *Devnet) APIInfo(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return d.token + ":http://" + addr.String()
	}
	proto := "ip4"
	if tcp.IP.To4() == nil {
		proto = "ip6"
	}
	return fmt.Sprintf("%s:/%s/%s/tcp/%d/http", d.token, proto, tcp.IP, tcp.Port)
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully.
func (d *Devnet) Serve(ctx context.Context, ln net.Listener) error {
	// Request contexts derive from ctx, so a long StateWaitMsg ends at shutdown.
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("devnet server: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("devnet server shutdown: %w", err)
	}
	return nil
}

// compile-time check that partition bitfields serialise in Lotus form.
var _ json.Marshaler = bitfield.BitField{}

// sectorInfo is sector num's on-chain info as Lotus writes it; the caller
// holds the chain's lock and knows the sector exists.
func (m *minerState) sectorInfo(num uint64) (*fullnode.SectorOnChainInfo, error) {
	commR := m.commR[num]
	sealed, err := commcid.ReplicaCommitmentV1ToCID(commR[:])
	if err != nil {
		return nil, fmt.Errorf("sector %d: %w", num, err)
	}
	zero := big.Zero()
	return &fullnode.SectorOnChainInfo{
		SectorNumber: abi.SectorNumber(num), SealProof: m.SealProof, SealedCID: sealed,
		DeprecatedDealIDs: []abi.DealID{}, Activation: 0, Expiration: 1 << 40,
		DealWeight: zero, VerifiedDealWeight: zero, InitialPledge: zero,
		ExpectedDayReward: zero, ExpectedStoragePledge: zero, ReplacedDayReward: zero, DailyFee: zero,
	}, nil
}
