package fullnode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/filecoin-project/go-state-types/proof"
	"github.com/ipfs/go-cid"
)

// Golden JSON of Lotus's API (the examples of documentation/en/
// api-v1-unstable-methods.md): each decodes into vsm's type and encodes back to the
// same JSON.
var lotusGolden = []struct {
	name string
	into func() any
	json string
}{
	{"StateMinerProvingDeadline", func() any { return new(dline.Info) }, `{"CurrentEpoch":10101,"PeriodStart":10101,"Index":42,"Open":10101,"Close":10101,"Challenge":10101,"FaultCutoff":10101,"WPoStPeriodDeadlines":42,"WPoStProvingPeriod":10101,"WPoStChallengeWindow":10101,"WPoStChallengeLookback":10101,"FaultDeclarationCutoff":10101}`},
	{"StateMinerPartitions", func() any { return new([]Partition) }, `[{"AllSectors":[5,1],"FaultySectors":[5,1],"RecoveringSectors":[5,1],"LiveSectors":[5,1],"ActiveSectors":[5,1]}]`},
	{"StateMinerDeadlines", func() any { return new([]Deadline) }, `[{"PostSubmissions":[5,1],"DisputableProofCount":42,"DailyFee":"0"}]`},
	{"StateMinerInfo", func() any { return new(MinerInfo) }, `{"Owner":"f01234","Worker":"f01234","NewWorker":"f01234","ControlAddresses":["f01234"],"WorkerChangeEpoch":10101,"PeerId":"12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf","Multiaddrs":["Ynl0ZSBhcnJheQ=="],"WindowPoStProofType":8,"SectorSize":34359738368,"WindowPoStPartitionSectors":42,"ConsensusFaultElapsed":10101,"PendingOwnerAddress":"f01234","Beneficiary":"f01234","BeneficiaryTerm":{"Quota":"0","UsedQuota":"0","Expiration":10101},"PendingBeneficiaryTerm":{"NewBeneficiary":"f01234","NewQuota":"0","NewExpiration":10101,"ApprovedByBeneficiary":true,"ApprovedByNominee":true}}`},
	{"StateWaitMsg", func() any { return new(MsgLookup) }, `{"Message":{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"},"Receipt":{"ExitCode":0,"Return":"Ynl0ZSBhcnJheQ==","GasUsed":9,"EventsRoot":{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"}},"ReturnDec":{},"TipSet":[{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"},{"/":"bafy2bzacebp3shtrn43k7g3unredz7fxn4gj533d3o43tqn2p2ipxxhrvchve"}],"Height":10101}`},
	{"MpoolPushMessage message", func() any { return new(Message) }, `{"Version":42,"To":"f01234","From":"f01234","Nonce":42,"Value":"0","GasLimit":9,"GasFeeCap":"0","GasPremium":"0","Method":1,"Params":"Ynl0ZSBhcnJheQ=="}`},
	{"MessageSendSpec", func() any { return new(MessageSendSpec) }, `{"MaxFee":"0","MsgUuid":"07070707-0707-0707-0707-070707070707","MaximizeFeeCap":true}`},
	{"StateSectorGetInfo", func() any { return new(SectorOnChainInfo) }, `{"SectorNumber":9,"SealProof":8,"SealedCID":{"/":"bagboea4b5abcatlxechwbp7kjpjguna6r6q7ejrhe6mdp3lf34pmswn27pkkiekz"},"DeprecatedDealIDs":[5432],"Activation":10101,"Expiration":10101,"DealWeight":"0","VerifiedDealWeight":"0","InitialPledge":"0","ExpectedDayReward":"0","ExpectedStoragePledge":"0","PowerBaseEpoch":10101,"ReplacedDayReward":"0","SectorKeyCID":{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"},"Flags":0,"DailyFee":"0"}`},
	{"ChainHead", func() any { return new(TipSet) }, `{"Cids":[{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"}],"Blocks":[{"Miner":"f01234","Parents":[{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"}],"Height":10101,"Timestamp":42}],"Height":10101}`},
}

func TestLotusJSONGolden(t *testing.T) {
	for _, tc := range lotusGolden {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.into()
			if err := json.Unmarshal([]byte(tc.json), v); err != nil {
				t.Fatal(err)
			}
			back, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			_ = json.Unmarshal([]byte(tc.json), &want)
			_ = json.Unmarshal(back, &got)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("round trip\n got %s\nwant %s", back, tc.json)
			}
		})
	}
	// go-address writes f (mainnet) addresses; t ones parse to the same ID.
	var mi MinerInfo
	if err := json.Unmarshal([]byte(`{"Owner":"t01234","Worker":"t01000"}`), &mi); err != nil {
		t.Fatal(err)
	}
	if id, err := ActorID(mi.Worker); err != nil || id != 1000 {
		t.Fatalf("worker id %d, %v", id, err)
	}
	// A bitfield is a run-length array starting with a run of zeros:
	// {0,1,2,8,9} is [0,3,5,2], the empty set [0].
	js, _ := json.Marshal(struct{ A, E bitfield.BitField }{bitfield.NewFromSet([]uint64{0, 1, 2, 8, 9}), bitfield.New()})
	if string(js) != `{"A":[0,3,5,2],"E":[0]}` {
		t.Fatalf("bitfield JSON %s", js)
	}
	// The empty key is a list, and amounts are strings (a nil one as "0"
	// once the client normalises it).
	if js, _ := json.Marshal(TipSetKey(nil)); string(js) != `[]` {
		t.Fatalf("nil TipSetKey = %s", js)
	}
	if js, _ := json.Marshal(struct{ V big.Int }{ZeroIfNil(big.Int{})}); string(js) != `{"V":"0"}` {
		t.Fatalf("ZeroIfNil JSON %s", js)
	}
}

func TestAddresses(t *testing.T) {
	a := IDAddress(1000)
	if a.String() != "f01000" {
		t.Fatalf("String = %s", a)
	}
	if got := hex.EncodeToString(AddressEntropy(a)); got != "4300e807" {
		// CBOR bytes(3): protocol 0, uvarint(1000) = e8 07
		t.Fatalf("AddressEntropy = %s, want 4300e807", got)
	}
	for _, s := range []string{"t3vvmn62lofvhjd2ugzca6sof2j2ubwok6cj4xxbfzz4yuxfkgobpihhd2thlanmsh3w2ptld2gqkn2jvlss4a", "f1abjxfbp274xpdqcpuaykwkfb43omjotacm2p3za"} {
		k, err := address.NewFromString(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if _, err := ActorID(k); err == nil || !strings.Contains(err.Error(), "not an ID address") {
			t.Fatalf("ActorID(%s) err = %v", s, err)
		}
	}
}

// TestDrawRandomness checks Lotus's blake2b construction against a value
// computed independently (Python's hashlib.blake2b, digest_size=32).
func TestDrawRandomness(t *testing.T) {
	base := make([]byte, 32)
	for i := range base {
		base[i] = byte(i)
	}
	got := DrawRandomnessFromBase(base, crypto.DomainSeparationTag_WinningPoStChallengeSeed, 12345, AddressEntropy(IDAddress(1000)))
	if h := hex.EncodeToString(got[:]); h != "450388f901a2414c73205ba2392e44223979229cac70a0e7689b5b8fac21f9e3" {
		t.Fatalf("draw = %s", h)
	}
	got = DrawRandomnessFromBase(nil, crypto.DomainSeparationTag_PoStChainCommit, -1, nil)
	if h := hex.EncodeToString(got[:]); h != "62a9fdcb0714c77603738653ff8f0f4f164f2e364ce7a500be1c5ee3a6a54740" {
		t.Fatalf("draw = %s", h)
	}
}

// TestParamsCBOR: go-state-types' cbor-gen encodes the params exactly as
// the chain does (vectors assembled by hand from the tuple layout).
func TestParamsCBOR(t *testing.T) {
	p := miner.SubmitWindowedPoStParams{
		Deadline:         3,
		Partitions:       []miner.PoStPartition{{Index: 0, Skipped: bitfield.New()}},
		Proofs:           []proof.PoStProof{{PoStProof: 13, ProofBytes: []byte{1, 2}}},
		ChainCommitEpoch: 100,
		ChainCommitRand:  abi.Randomness{},
	}
	// array(5) 3 array(1)[array(2) 0 bytes(0)] array(1)[array(2) 13
	// bytes(2)0102] uint8(100) bytes(0)
	want, _ := hex.DecodeString("8503818200408182" + "0d420102" + "186440")
	got, err := EncodeParams(&p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("SubmitWindowedPoSt CBOR = %x (%v), want %x", got, err, want)
	}
	df := miner.DeclareFaultsParams{Faults: []miner.FaultDeclaration{{Deadline: 2, Partition: 1, Sectors: bitfield.NewFromSet([]uint64{0, 1, 2, 8, 9})}}}
	// array(1)[array(1)[array(3) 2 1 bytes(3)742c05]]
	wantDF, _ := hex.DecodeString("818183020143742c05")
	if got, err := EncodeParams(&df); err != nil || !bytes.Equal(got, wantDF) {
		t.Fatalf("DeclareFaults CBOR = %x (%v), want %x", got, err, wantDF)
	}
	rec := miner.DeclareFaultsRecoveredParams{Recoveries: []miner.RecoveryDeclaration{miner.RecoveryDeclaration(df.Faults[0])}}
	if got, err := EncodeParams(&rec); err != nil || !bytes.Equal(got, wantDF) {
		t.Fatalf("DeclareFaultsRecovered CBOR = %x (%v), want %x", got, err, wantDF)
	}
}

func TestMessageJSON(t *testing.T) {
	c, _ := cid.Decode("bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4")
	js, err := json.Marshal(&MsgLookup{Message: c, Receipt: MessageReceipt{ExitCode: exitcode.ErrIllegalArgument}, TipSet: TipSetKey{c}})
	if err != nil || !strings.Contains(string(js), `"ExitCode":16`) || !strings.Contains(string(js), `"TipSet":[{"/":"bafy2`) {
		t.Fatalf("MsgLookup JSON %s %v", js, err)
	}
	if s := exitcode.ErrIllegalArgument.String(); s != "ErrIllegalArgument(16)" {
		t.Fatalf("exit code string %q", s)
	}
}

func TestParseAPIInfo(t *testing.T) {
	tests := []struct {
		in, token, url, wantErr string
	}{
		{"tok:/ip4/127.0.0.1/tcp/1234/http", "tok", "http://127.0.0.1:1234/rpc/v1", ""},
		{"tok:/ip4/10.0.0.2/tcp/1234", "tok", "http://10.0.0.2:1234/rpc/v1", ""},
		{"tok:/ip6/::1/tcp/1234/ws", "tok", "http://[::1]:1234/rpc/v1", ""},
		{"tok:/dns/node.example/tcp/443/wss", "tok", "https://node.example:443/rpc/v1", ""},
		{"tok:http://127.0.0.1:1234", "tok", "http://127.0.0.1:1234/rpc/v1", ""},
		{"tok:http://127.0.0.1:1234/rpc/v0", "tok", "http://127.0.0.1:1234/rpc/v0", ""},
		{"/ip4/127.0.0.1/tcp/1234/http", "", "http://127.0.0.1:1234/rpc/v1", ""},
		{"http://127.0.0.1:1234", "", "http://127.0.0.1:1234/rpc/v1", ""},
		{"", "", "", "empty"},
		{"justatoken", "", "", "missing ':'"},
		{"tok:/ip4/300.0.0.1/tcp/1234/http", "", "", "not an IPv4"},
		{"tok:/ip4/127.0.0.1/udp/1234/http", "", "", "want tcp"},
		{"tok:/ip4/127.0.0.1/tcp/99999/http", "", "", "bad tcp port"},
		{"tok:/ip4/127.0.0.1/tcp/1234/quic", "", "", "unsupported suffix"},
		{"tok:/unix/tmp/sock/x", "", "", "unsupported protocol"},
		{"tok:ftp://h:1", "", "", "scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAPIInfo(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Token != tc.token || got.URL != tc.url {
				t.Fatalf("got %+v, want token %q url %q", got, tc.token, tc.url)
			}
			again, err := ParseAPIInfo(got.String())
			if err != nil || again != got {
				t.Fatalf("String() %q does not parse back: %+v %v", got.String(), again, err)
			}
		})
	}
}

func TestDeadlineAt(t *testing.T) {
	p := MainnetPolicy()
	tests := []struct {
		name                                         string
		offset, epoch                                abi.ChainEpoch
		periodStart                                  abi.ChainEpoch
		index                                        uint64
		open, close, challenge, cutoff               abi.ChainEpoch
		isOpen, elapsed, cutoffPassed, periodStarted bool
	}{
		{"mid period", 100, 5000, 2980, 33, 4960, 5020, 4940, 4890, true, false, true, true},
		{"first epoch of period", 100, 2980, 2980, 0, 2980, 3040, 2960, 2910, true, false, true, true},
		{"last epoch of period", 100, 5859, 2980, 47, 5800, 5860, 5780, 5730, true, false, true, true},
		{"before genesis period", 100, 50, -2780, 47, 40, 100, 20, -30, true, false, true, true},
		{"offset larger than period", 2880 + 7, 10, 7, 0, 7, 67, -13, -63, true, false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DeadlineAt(tc.offset, tc.epoch, p)
			if d.PeriodStart != tc.periodStart || d.Index != tc.index || d.Open != tc.open || d.Close != tc.close ||
				d.Challenge != tc.challenge || d.FaultCutoff != tc.cutoff {
				t.Fatalf("got %s", DeadlineString(d))
			}
			if d.IsOpen() != tc.isOpen || d.HasElapsed() != tc.elapsed || d.FaultCutoffPassed() != tc.cutoffPassed || d.PeriodStarted() != tc.periodStarted {
				t.Fatalf("predicates wrong for %s", DeadlineString(d))
			}
			if err := ValidateDeadlineInfo(d); err != nil {
				t.Fatal(err)
			}
		})
	}
	d := p.NewInfo(0, 3, 500)
	if !d.HasElapsed() {
		t.Fatal("deadline 3 of period 0 should have elapsed at 500")
	}
	n := d.NextNotElapsed()
	if n.PeriodStart != 2880 || n.Open != 2880+180 || n.HasElapsed() {
		t.Fatalf("NextNotElapsed = %s", DeadlineString(n))
	}
	bad := *d
	bad.Close++
	if err := ValidateDeadlineInfo(&bad); err == nil {
		t.Fatal("ValidateDeadlineInfo accepted an inconsistent Close")
	}
}

func TestProofs(t *testing.T) {
	tests := []struct {
		size      string
		post      abi.RegisteredPoStProof
		name      string
		partition uint64
		winning   string
	}{
		{"2KiB", 10, "StackedDrgWindow2KiBV1_2", 2, "StackedDrgWinning2KiBV1"},
		{"32GiB", 13, "StackedDrgWindow32GiBV1_2", 2349, "StackedDrgWinning32GiBV1"},
		{"64GiB", 14, "StackedDrgWindow64GiBV1_2", 2300, "StackedDrgWinning64GiBV1"},
	}
	for _, tc := range tests {
		size, err := ParseSectorSize(tc.size)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := WindowPoStProofForSize(size)
		name, _ := ProofsAPIName(pt)
		ps, _ := builtin.PoStProofWindowPoStPartitionSectors(pt)
		win, _ := WinningPoStProofFor(pt)
		winName, _ := WinningPoStProofName(win)
		if pt != tc.post || name != tc.name || ps != tc.partition || winName != tc.winning || size.ShortString() != tc.size {
			t.Errorf("%s: proof %d name %s partition %d winning %s", tc.size, pt, name, ps, winName)
		}
	}
	if _, err := ParseSectorSize("3GiB"); err == nil {
		t.Error("ParseSectorSize accepted 3GiB")
	}
	if IsWinningPoSt(13) || !IsWinningPoSt(3) || !IsWindowPoSt(8) {
		t.Error("IsWinningPoSt / IsWindowPoSt")
	}
	if PoStPartitionLimit(2349) != 3 || PoStPartitionLimit(2) != 3 || PoStPartitionLimit(25_001) != 0 || MaxPartitionsPerPoSt(25_001) != 1 {
		t.Error("partition limits")
	}
}
