package fullnode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/filecoin-project/go-state-types/big"
	"github.com/ipfs/go-cid"
)

func TestParseFIL(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"5 FIL", "5000000000000000000", false},
		{"5", "5000000000000000000", false},
		{"0.5 FIL", "500000000000000000", false},
		{"5 nanoFIL", "5000000000", false},
		{"1 attoFIL", "1", false},
		{"0.1 attoFIL", "", true},
		{"-1 FIL", "", true},
		{"5 FILs", "", true},
		{"five", "", true},
	}
	for _, tt := range tests {
		got, err := ParseFIL(tt.in)
		if (err != nil) != tt.err || (!tt.err && got.String() != tt.want) {
			t.Errorf("ParseFIL(%q) = %s, %v; want %s (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
	if s := FILString(big.NewInt(5_000_000_000)); s != "0.000000005 FIL" {
		t.Errorf("FILString = %q", s)
	}
}

func TestNewMsgUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewMsgUUID(), NewMsgUUID()
	if !re.MatchString(a) || a == b {
		t.Fatalf("uuids %q %q", a, b)
	}
}

// recorder is a full node that records each call's params and answers
// from a table.
type recorder struct {
	mu      sync.Mutex
	calls   map[string][]json.RawMessage
	answers map[string]any
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     uint64            `json:"id"`
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	rc.mu.Lock()
	rc.calls[req.Method] = req.Params
	ans, ok := rc.answers[req.Method]
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "method not found"}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": ans})
}

func TestV0AndV1WaitArguments(t *testing.T) {
	cid, _ := cid.Decode("bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4")
	lookup := map[string]any{"Message": cid, "Receipt": map[string]any{"ExitCode": 16}, "Height": 7}
	rc := &recorder{calls: map[string][]json.RawMessage{}, answers: map[string]any{
		"Filecoin.StateWaitMsg": lookup, "Filecoin.StateSearchMsg": lookup,
		"Filecoin.StateReplay": map[string]any{"MsgCid": cid, "Error": "message failed with backtrace:\n00: t01000 (method 5) -- invalid PoSt (16)\n"},
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ctx := context.Background()
	for _, tt := range []struct {
		path       string
		wait, srch int
	}{{"/rpc/v1", 4, 4}, {"/rpc/v0", 2, 1}} {
		c := NewClient(APIInfo{URL: srv.URL + tt.path}, nil)
		if c.V0() != (tt.path == "/rpc/v0") {
			t.Fatalf("%s: V0 = %v", tt.path, c.V0())
		}
		ml, err := c.StateWaitMsg(ctx, cid, 5, LookbackNoLimit, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StateSearchMsg(ctx, EmptyTSK, cid, LookbackNoLimit, true); err != nil {
			t.Fatal(err)
		}
		if n := len(rc.calls["Filecoin.StateWaitMsg"]); n != tt.wait {
			t.Errorf("%s: StateWaitMsg sent %d params, want %d", tt.path, n, tt.wait)
		}
		if n := len(rc.calls["Filecoin.StateSearchMsg"]); n != tt.srch {
			t.Errorf("%s: StateSearchMsg sent %d params, want %d", tt.path, n, tt.srch)
		}
		if msg := c.ReceiptError(ctx, ml); !strings.Contains(msg, "ErrIllegalArgument(16)") || !strings.Contains(msg, "invalid PoSt") {
			t.Errorf("%s: ReceiptError = %q", tt.path, msg)
		}
		if tt.path == "/rpc/v0" {
			if _, err := c.StateWaitMsg(ctx, cid, 5, 100, true); err == nil || !strings.Contains(err.Error(), "/rpc/v1") {
				t.Errorf("v0 with a lookback limit: %v, want a clear refusal", err)
			}
		}
	}
}

func TestPushSpecOnTheWire(t *testing.T) {
	cid, _ := cid.Decode("bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4")
	rc := &recorder{calls: map[string][]json.RawMessage{}, answers: map[string]any{
		"Filecoin.GasEstimateGasLimit": 1000,
		"Filecoin.MpoolPushMessage":    map[string]any{"Message": map[string]any{}, "Signature": map[string]any{"Type": 1, "Data": ""}, "CID": cid},
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := NewClient(APIInfo{URL: srv.URL + "/rpc/v1"}, nil)
	fee, _ := ParseFIL("5 FIL")
	spec := &MessageSendSpec{MaxFee: fee, MsgUuid: NewMsgUUID(), MaximizeFeeCap: true, GasOverEstimation: 1.5}
	if _, err := c.MpoolPushMessage(context.Background(), &Message{To: IDAddress(1000), From: IDAddress(100), Method: 5}, spec); err != nil {
		t.Fatal(err)
	}
	params := rc.calls["Filecoin.MpoolPushMessage"]
	var msg struct{ GasLimit int64 }
	var got map[string]any
	if len(params) != 2 || json.Unmarshal(params[0], &msg) != nil || json.Unmarshal(params[1], &got) != nil {
		t.Fatalf("params %s", params)
	}
	if msg.GasLimit != 1500 {
		t.Errorf("GasLimit %d, want 1000 x 1.5", msg.GasLimit)
	}
	if got["MaxFee"] != "5000000000000000000" || got["MsgUuid"] != spec.MsgUuid || got["MaximizeFeeCap"] != true || got["GasOverEstimation"] != nil {
		t.Errorf("spec on the wire %v", got)
	}
	// A node without GasEstimateGasLimit estimates by itself.
	delete(rc.answers, "Filecoin.GasEstimateGasLimit")
	if _, err := c.MpoolPushMessage(context.Background(), &Message{To: IDAddress(1000), From: IDAddress(100), Method: 5}, spec); err != nil {
		t.Fatalf("without GasEstimateGasLimit: %v", err)
	}
}
