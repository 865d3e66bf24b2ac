package fullnode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vsm-project/vsm/fullnode/bitfield"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		id      uint64
		wantErr string
	}{
		{"t01000", 1000, ""},
		{"f01000", 1000, ""},
		{"t00", 0, ""},
		{"<empty>", 0, ""},
		{"t3vvmn62lofvhjd2ugzca6sof2j2ubwok6cj4xxbfzz4yuxfkgobpihhd2thlanmsh3w2ptld2gqkn2jvlss4a", 0, "BLS"},
		{"f1abjxfbp274xpdqcpuaykwkfb43omjotacm2p3za", 0, "secp256k1"},
		{"f2xyz", 0, "actor"},
		{"f410fxyz", 0, "delegated"},
		{"x01000", 0, "network prefix"},
		{"t0", 0, "too short"},
		{"t0abc", 0, "not a decimal"},
		{"t0012", 0, "leading zero"},
		{"t099999999999999999999999", 0, "not a decimal"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			a, err := ParseAddress(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAddress(%q) err = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.ID() != tc.id {
				t.Fatalf("id = %d, want %d", a.ID(), tc.id)
			}
		})
	}
	a := NewIDAddress(1000)
	if got := hex.EncodeToString(a.MarshalCBOR()); got != "4300e807" {
		// CBOR bytes(3): protocol 0, uvarint(1000) = e8 07
		t.Fatalf("MarshalCBOR = %s, want 4300e807", got)
	}
	js, _ := json.Marshal(struct{ A, U Address }{A: a})
	if string(js) != `{"A":"t01000","U":"\u003cempty\u003e"}` {
		t.Fatalf("JSON = %s", js)
	}
}

func TestCID(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		codec, mh   uint64
		wantErr     string
		digestBytes int
	}{
		{"lotus doc block cid", "bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4", CodecDagCBOR, MhBlake2b256, "", 32},
		{"lotus doc sealed cid", "bagboea4b5abcatlxechwbp7kjpjguna6r6q7ejrhe6mdp3lf34pmswn27pkkiekz", CodecFilCommitmentSealed, MhPoseidonBLS12381A1FC1, "", 32},
		{"cidv0", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", 0, 0, "CIDv0", 0},
		{"base58btc", "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7", 0, 0, "multibase", 0},
		{"truncated", "bafy2bzacea3wsdh6y3a36tb3skempjoxqp", 0, 0, "digest length", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCID(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseCID err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, codec, mh, digest, err := c.Parts()
			if err != nil || codec != tc.codec || mh != tc.mh || len(digest) != tc.digestBytes {
				t.Fatalf("Parts = %x %x %d %v", codec, mh, len(digest), err)
			}
			if c.String() != tc.in {
				t.Fatalf("String = %s, want %s", c, tc.in)
			}
			js, _ := json.Marshal(c)
			var back CID
			if err := json.Unmarshal(js, &back); err != nil || !back.Equal(c) {
				t.Fatalf("JSON round trip %s: %v", js, err)
			}
		})
	}
	var commR [32]byte
	for i := range commR {
		commR[i] = byte(i)
	}
	c := SealedCIDFromCommR(commR)
	if !strings.HasPrefix(c.String(), "bagboea4b5abc") {
		t.Fatalf("sealed cid %s does not have the sealed-commitment prefix", c)
	}
	back, err := CommRFromSealedCID(c)
	if err != nil || back != commR {
		t.Fatalf("CommR round trip: %x %v", back, err)
	}
	if _, err := CommRFromSealedCID(NewCID(CodecDagCBOR, MhSHA2_256, commR[:])); err == nil {
		t.Fatal("CommRFromSealedCID accepted a dag-cbor cid")
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
		offset, epoch                                ChainEpoch
		periodStart                                  ChainEpoch
		index                                        uint64
		open, close, challenge, cutoff               ChainEpoch
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
				t.Fatalf("got %s", d)
			}
			if d.IsOpen() != tc.isOpen || d.HasElapsed() != tc.elapsed || d.FaultCutoffPassed() != tc.cutoffPassed || d.PeriodStarted() != tc.periodStarted {
				t.Fatalf("predicates wrong for %s", d)
			}
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	d := NewDeadlineInfo(0, 3, 500, p)
	if !d.HasElapsed() {
		t.Fatal("deadline 3 of period 0 should have elapsed at 500")
	}
	n := d.NextNotElapsed()
	if n.PeriodStart != 2880 || n.Open != 2880+180 || n.HasElapsed() {
		t.Fatalf("NextNotElapsed = %s", n)
	}
	bad := d
	bad.Close++
	if err := bad.Validate(); err == nil {
		t.Fatal("Validate accepted an inconsistent Close")
	}
}

func TestParamsCBOR(t *testing.T) {
	p := SubmitWindowedPoStParams{
		Deadline:         3,
		Partitions:       []PoStPartition{{Index: 0}},
		Proofs:           []PoStProof{{PoStProof: 13, ProofBytes: []byte{1, 2}}},
		ChainCommitEpoch: 100,
	}
	// Hand-assembled: array(5) 3 array(1)[array(2) 0 bytes(0)]
	// array(1)[array(2) 13 bytes(2)0102] uint8(100) bytes(0)
	want, _ := hex.DecodeString("8503818200408182" + "0d420102" + "186440")
	got := p.MarshalCBOR()
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalCBOR = %x, want %x", got, want)
	}
	p.ChainCommitEpoch = -5
	p.Partitions = append(p.Partitions, PoStPartition{Index: 1, Skipped: bitfield.New(4, 5)})
	p.ChainCommitRand = bytes.Repeat([]byte{7}, 32)
	var back SubmitWindowedPoStParams
	if err := back.UnmarshalCBOR(p.MarshalCBOR()); err != nil {
		t.Fatal(err)
	}
	if back.Deadline != 3 || back.ChainCommitEpoch != -5 || len(back.Partitions) != 2 ||
		!back.Partitions[1].Skipped.Equal(bitfield.New(4, 5)) || !bytes.Equal(back.ChainCommitRand, p.ChainCommitRand) ||
		back.Proofs[0].PoStProof != 13 {
		t.Fatalf("round trip = %+v", back)
	}

	bad := []struct {
		name, hex, want string
	}{
		{"empty", "", "end of input"},
		{"wrong tuple size", "8400000000", "tuple of 4"},
		{"non-minimal int", "851803808000", "non-minimal"},
		{"trailing bytes", hex.EncodeToString(p.MarshalCBOR()) + "00", "trailing"},
		{"huge array", "85039bffffffffffffffff", "longer than the input"},
		{"bad bitfield", "850381820041ff", "Skipped"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := hex.DecodeString(tc.hex)
			var x SubmitWindowedPoStParams
			err := x.UnmarshalCBOR(raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	df := DeclareFaultsParams{Faults: []FaultDeclaration{{Deadline: 2, Partition: 1, Sectors: bitfield.New(0, 1, 2, 8, 9)}}}
	// array(1)[array(1)[array(3) 2 1 bytes(3)742c05]]
	wantDF, _ := hex.DecodeString("818183020143742c05")
	if got := df.MarshalCBOR(); !bytes.Equal(got, wantDF) {
		t.Fatalf("DeclareFaults CBOR = %x, want %x", got, wantDF)
	}
	var dfBack DeclareFaultsParams
	if err := dfBack.UnmarshalCBOR(wantDF); err != nil || !dfBack.Faults[0].Sectors.Equal(df.Faults[0].Sectors) {
		t.Fatalf("DeclareFaults round trip: %+v %v", dfBack, err)
	}
}

func TestBigIntAndProofs(t *testing.T) {
	var b BigInt
	if err := json.Unmarshal([]byte(`"-123456789012345678901234567890"`), &b); err != nil {
		t.Fatal(err)
	}
	if js, _ := json.Marshal(b); string(js) != `"-123456789012345678901234567890"` {
		t.Fatalf("BigInt JSON = %s", js)
	}
	for _, bad := range []string{`12`, `"1.5"`, `"abc"`} {
		if err := json.Unmarshal([]byte(bad), &b); err == nil {
			t.Errorf("BigInt accepted %s", bad)
		}
	}
	if js, _ := json.Marshal(BigInt{}); string(js) != `"0"` {
		t.Fatalf("zero BigInt = %s", js)
	}

	tests := []struct {
		size      string
		post      RegisteredPoStProof
		name      string
		partition uint64
	}{
		{"2KiB", 10, "StackedDrgWindow2KiBV1_2", 2},
		{"32GiB", 13, "StackedDrgWindow32GiBV1_2", 2349},
		{"64GiB", 14, "StackedDrgWindow64GiBV1_2", 2300},
	}
	for _, tc := range tests {
		size, err := ParseSectorSize(tc.size)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := WindowPoStProofForSize(size)
		name, _ := pt.ProofsAPIName()
		ps, _ := pt.PartitionSectors()
		if pt != tc.post || name != tc.name || ps != tc.partition {
			t.Errorf("%s: proof %d name %s partition %d", tc.size, pt, name, ps)
		}
	}
	if _, err := ParseSectorSize("3GiB"); err == nil {
		t.Error("ParseSectorSize accepted 3GiB")
	}
}
