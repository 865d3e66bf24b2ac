package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fullnode"
)

func TestInitWritesParsableHomeAndNeverOverwrites(t *testing.T) {
	h, err := NewHome(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Init(InitOptions{NodeID: "n1", Listen: "127.0.0.1:2000", ExtProverConfig: "# ext\n"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Written) != 3 || len(res.Existing) != 0 {
		t.Fatalf("first init %+v", res)
	}
	c, err := Load(h.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.ID != "n1" || c.Node.Listen != "127.0.0.1:2000" || time.Duration(c.Raft.HeartbeatTimeout) != 300*time.Millisecond || c.Gossip.Key == "" {
		t.Fatalf("config %+v", c)
	}
	if _, err := h.JWTSecret(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(h.SecretPath()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret mode %v", fi.Mode())
	}
	os.WriteFile(h.ExtProverPath(), []byte("# edited\n"), 0o644)
	res, err = h.Init(InitOptions{NodeID: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Written) != 0 || len(res.Existing) != 3 {
		t.Fatalf("second init %+v", res)
	}
	if b, _ := os.ReadFile(h.ExtProverPath()); string(b) != "# edited\n" {
		t.Fatal("second init overwrote ext-prover.cfg")
	}
	if c2, _ := Load(h.ConfigPath()); c2.Node.ID != "n1" {
		t.Fatal("second init overwrote config.toml")
	}
}

func TestInitWithSharedSecrets(t *testing.T) {
	a, _ := NewHome(t.TempDir(), "")
	if _, err := a.Init(InitOptions{NodeID: "a"}); err != nil {
		t.Fatal(err)
	}
	s, err := a.ExportSecrets()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewHome(t.TempDir(), "")
	if _, err := b.Init(InitOptions{NodeID: "b", Secrets: &s}); err != nil {
		t.Fatal(err)
	}
	sa, _ := a.JWTSecret()
	sb, _ := b.JWTSecret()
	cb, _ := Load(b.ConfigPath())
	if string(sa) != string(sb) || cb.Gossip.Key != s.GossipKey {
		t.Fatal("secrets not shared")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown key", "[Node]\nID='a'\nListn='x'\n", "unknown keys Node.Listn"},
		{"bad duration", "[Node]\nID='a'\n[Raft]\nHeartbeatTimeout='soon'\n", "want a value like 500ms"},
		{"missing id", "[Node]\n", "Node.ID is empty"},
		{"bad address", "[Node]\nID='a'\nListen='1789'\n", "Node.Listen"},
		{"relative storage path", "[Node]\nID='a'\n[StoragePaths]\ns='rel/dir'\n", "absolute path"},
		{"lease over heartbeat", "[Node]\nID='a'\n[Raft]\nLeaderLeaseTimeout='5s'\n", "LeaderLeaseTimeout"},
		{"unknown log store", "[Node]\nID='a'\n[Raft]\nLogStore='rocks'\n", `Raft.LogStore = "rocks": want "wal" (the default) or "bolt"`},
		{"not toml", "[Node\n", "expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfDirSharesConfigButNotData(t *testing.T) {
	src := t.TempDir()
	h, _ := NewHome(t.TempDir(), src)
	if h.ConfigPath() != filepath.Join(src, ConfigFile) || h.ExtProverPath() != filepath.Join(src, ExtProverFile) {
		t.Fatalf("conf-dir not used: %+v", h)
	}
	if filepath.Dir(h.RaftDir()) != h.Dir {
		t.Fatal("raft data must stay in the node's own home")
	}
}

func TestSecretsFileValidation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(p, []byte(`{"jwt":"c2hvcnQ=","gossip_key":"c2hvcnQ="}`), 0o600)
	if _, err := ReadSecretsFile(p); err == nil || !strings.Contains(err.Error(), "at least 16 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxPartitionsPerMessageDefault(t *testing.T) {
	// The actor's PoStedPartitionsMax: a default above it would make the
	// runner's clamp, not the config, decide every message.
	if got := Defaults().PoSt.MaxPartitionsPerMessage; got != 3 {
		t.Fatalf("default MaxPartitionsPerMessage = %d, want 3", got)
	}
	c, err := Parse([]byte("[Node]\nID = \"n1\"\n[PoSt]\nMaxPartitionsPerMessage = 8\n"))
	if err != nil || c.PoSt.MaxPartitionsPerMessage != 8 {
		t.Fatalf("a larger value parses (the runner clamps it): %v %+v", err, c.PoSt)
	}
}

func TestPoStSendingKeys(t *testing.T) {
	d := Defaults().PoSt
	fee, err := d.MaxFee()
	if err != nil || fee.String() != "5000000000000000000" || !d.MaximizeFeeCap || d.GasOverEstimation != 1.25 || d.MessageConfidence != 5 {
		t.Fatalf("defaults %+v fee %s %v: want Lotus's WindowPoSt defaults", d, fee, err)
	}
	// Proofs are verified before sending unless the operator says not to.
	if !d.VerifyProofs {
		t.Fatal("VerifyProofs is off by default; want on, as Lotus")
	}
	if c, err := Parse([]byte("[Node]\nID = \"n1\"\n[PoSt]\nVerifyProofs = false\n")); err != nil || c.PoSt.VerifyProofs {
		t.Fatalf("VerifyProofs = false: %+v, %v", c.PoSt, err)
	}
	tests := []struct {
		body    string
		wantErr string
	}{
		{`Sender = "t0101"` + "\nMaxFeeCap = \"500 nanoFIL\"\nGasOverEstimation = 1.2\nMaximizeFeeCap = false", ""},
		{`Sender = "t3abc"`, "PoSt.Sender"},
		{`MaxFeeCap = "5 FILs"`, "PoSt.MaxFeeCap"},
		{`GasOverEstimation = 0.5`, "PoSt.GasOverEstimation"},
	}
	for _, tt := range tests {
		c, err := Parse([]byte("[Node]\nID = \"n1\"\n[PoSt]\n" + tt.body + "\n"))
		if tt.wantErr == "" {
			if err != nil {
				t.Fatalf("%s: %v", tt.body, err)
			}
			if a, _ := c.PoSt.SenderAddress(); a != fullnode.IDAddress(101) || c.PoSt.MaximizeFeeCap {
				t.Fatalf("%s: %+v", tt.body, c.PoSt)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want %q", tt.body, err, tt.wantErr)
		}
	}
}

func TestGatewayKeys(t *testing.T) {
	tests := []struct {
		body    string
		want    int
		wantErr string
	}{
		{``, 0, ""},
		{`API = ["tok:/ip4/10.0.0.5/tcp/45132", "tok2:ws://gw:45132/rpc/v2"]`, 2, ""},
		{`API = ["/ip4/10.0.0.5/tcp/45132"]`, 0, "Gateway.API: gateway 1 of 1"},
		{`API = ["tok:/ip4/10.0.0.5/tcp/45132", "tok:/ip4/10.0.0.5/udp/1"]`, 0, "gateway 2 of 2"},
		{`API = "tok:/ip4/10.0.0.5/tcp/45132"`, 0, "Gateway.API"},
	}
	for _, tt := range tests {
		c, err := Parse([]byte("[Node]\nID = \"n1\"\n[Gateway]\n" + tt.body + "\n"))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(c.Gateway.API) != tt.want {
			t.Errorf("%s: %v %+v, want %d gateways", tt.body, err, c.Gateway, tt.want)
		}
	}
}
