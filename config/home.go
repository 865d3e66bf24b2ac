package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// File names inside a home (or --conf-dir for the config files).
const (
	ConfigFile    = "config.toml"
	ExtProverFile = "ext-prover.cfg"
	JWTSecretFile = "jwt-secret"
	APIFile       = "api"
	TokenFile     = "token"
	RaftDir       = "raft"
)

// Home is a node's directory. ConfDir is where config files are read
// from: the home itself, or another node's with --conf-dir.
type Home struct {
	Dir     string
	ConfDir string
}

// NewHome expands ~ and makes the paths absolute.
func NewHome(dir, confDir string) (Home, error) {
	d, err := expand(dir)
	if err != nil {
		return Home{}, err
	}
	h := Home{Dir: d, ConfDir: d}
	if confDir != "" {
		if h.ConfDir, err = expand(confDir); err != nil {
			return Home{}, err
		}
	}
	return h, nil
}

func expand(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", p, err)
		}
		p = filepath.Join(home, p[1:])
	}
	return filepath.Abs(p)
}

// ConfigPath is config.toml.
func (h Home) ConfigPath() string { return filepath.Join(h.ConfDir, ConfigFile) }

// ExtProverPath is ext-prover.cfg.
func (h Home) ExtProverPath() string { return filepath.Join(h.ConfDir, ExtProverFile) }

// SecretPath is the JWT signing secret. It lives with the config files so
// a --conf-dir node shares the source node's tokens.
func (h Home) SecretPath() string { return filepath.Join(h.ConfDir, JWTSecretFile) }

// RaftDir holds raft data.
func (h Home) RaftDir() string { return filepath.Join(h.Dir, RaftDir) }

// APIPath holds the running daemon's RPC address.
func (h Home) APIPath() string { return filepath.Join(h.Dir, APIFile) }

// TokenPath holds an admin token for local CLI use.
func (h Home) TokenPath() string { return filepath.Join(h.Dir, TokenFile) }

// Secrets must be identical on every member of a cluster.
type Secrets struct {
	// JWT signs API tokens (base64, 32 bytes).
	JWT string `json:"jwt"`
	// GossipKey encrypts memberlist traffic (base64, 32 bytes).
	GossipKey string `json:"gossip_key"`
}

// NewSecrets makes fresh random secrets.
func NewSecrets() Secrets {
	return Secrets{JWT: randomB64(32), GossipKey: randomB64(32)}
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on Linux.
	return base64.StdEncoding.EncodeToString(b)
}

// ReadSecretsFile reads secrets exported by `vsm cluster secrets export`.
func ReadSecretsFile(path string) (Secrets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secrets{}, fmt.Errorf("read secrets: %w", err)
	}
	var s Secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return Secrets{}, fmt.Errorf("secrets file %s is not valid JSON: %w", path, err)
	}
	for name, v := range map[string]string{"jwt": s.JWT, "gossip_key": s.GossipKey} {
		if raw, err := base64.StdEncoding.DecodeString(v); err != nil || len(raw) < 16 {
			return Secrets{}, fmt.Errorf("secrets file %s: %q must be base64 of at least 16 bytes", path, name)
		}
	}
	return s, nil
}

// JWTSecret reads the token-signing secret.
func (h Home) JWTSecret() ([]byte, error) {
	b, err := os.ReadFile(h.SecretPath())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no token secret at %s; run 'vsm daemon init' first", h.SecretPath())
		}
		return nil, fmt.Errorf("read token secret: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) < 16 {
		return nil, fmt.Errorf("token secret %s is not base64 of at least 16 bytes", h.SecretPath())
	}
	return raw, nil
}

// InitOptions are what `daemon init` may set.
type InitOptions struct {
	NodeID          string
	Listen          string
	RaftAddr        string
	GossipAddr      string
	Secrets         *Secrets // nil: make new ones
	ExtProverConfig string   // text of the default ext-prover.cfg
}

// InitResult says which files were written and which existed already.
type InitResult struct {
	Written, Existing []string
}

// Init creates the home. It never overwrites a file: running it twice
// reports what exists and changes nothing.
func (h Home) Init(o InitOptions) (InitResult, error) {
	var res InitResult
	for _, d := range []string{h.Dir, h.ConfDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return res, fmt.Errorf("create %s: %w", d, err)
		}
	}
	secrets := NewSecrets()
	if o.Secrets != nil {
		secrets = *o.Secrets
	}
	if o.NodeID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		o.NodeID = "node-" + hex.EncodeToString(b)
	}
	def := Defaults()
	o.Listen = or(o.Listen, def.Node.Listen)
	o.RaftAddr = or(o.RaftAddr, def.Node.RaftAddr)
	o.GossipAddr = or(o.GossipAddr, def.Gossip.Addr)
	var cfg strings.Builder
	if err := configTemplate.Execute(&cfg, map[string]any{"O": o, "D": def, "GossipKey": secrets.GossipKey}); err != nil {
		return res, fmt.Errorf("render config: %w", err)
	}
	files := []struct {
		path, text string
		mode       os.FileMode
	}{
		{h.ConfigPath(), cfg.String(), 0o600},
		{h.ExtProverPath(), o.ExtProverConfig, 0o644},
		{h.SecretPath(), secrets.JWT + "\n", 0o600},
	}
	for _, f := range files {
		wrote, err := writeNew(f.path, f.text, f.mode)
		if err != nil {
			return res, err
		}
		if wrote {
			res.Written = append(res.Written, f.path)
		} else {
			res.Existing = append(res.Existing, f.path)
		}
	}
	return res, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// writeNew creates path with text unless it exists (O_EXCL, so two inits
// racing cannot both write).
func writeNew(path, text string, mode os.FileMode) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, f.Close()
}

// ExportSecrets reads this home's secrets for `cluster secrets export`.
func (h Home) ExportSecrets() (Secrets, error) {
	jwt, err := os.ReadFile(h.SecretPath())
	if err != nil {
		return Secrets{}, fmt.Errorf("read token secret: %w", err)
	}
	cfg, err := Load(h.ConfigPath())
	if err != nil {
		return Secrets{}, err
	}
	return Secrets{JWT: strings.TrimSpace(string(jwt)), GossipKey: cfg.Gossip.Key}, nil
}

var configTemplate = template.Must(template.New("config").Parse(`# vsm node configuration, written by 'vsm daemon init'.
# Every key is described in docs/configuration.md. Flags of 'vsm daemon run'
# (--listen, --raft-addr, --gossip-addr, --node-id) override these values.

[Node]
# Permanent id of this member. Raft and gossip know the node by it, never by
# address, so keep it when the machine's address changes.
ID = "{{.O.NodeID}}"
# HTTP address of the JSON-RPC API (/rpc/v0), /metrics, /healthz and the
# status page. Keep it on loopback or a private interface: 0.0.0.0 exposes it
# on every interface.
Listen = "{{.O.Listen}}"
# Address raft listens on for its peers.
RaftAddr = "{{.O.RaftAddr}}"
# Address peers dial to reach this node's raft, if not RaftAddr (NAT, 0.0.0.0).
RaftAdvertise = ""

[Raft]
# Followers start an election after this long without a heartbeat.
HeartbeatTimeout = "{{.D.Raft.HeartbeatTimeout}}"
# Candidates give up an election round after this long.
ElectionTimeout = "{{.D.Raft.ElectionTimeout}}"
# A leader steps down if it cannot reach a quorum for this long.
LeaderLeaseTimeout = "{{.D.Raft.LeaderLeaseTimeout}}"
# Take a snapshot once this many log entries exist since the last one...
SnapshotThreshold = {{.D.Raft.SnapshotThreshold}}
# ...checking this often.
SnapshotInterval = "{{.D.Raft.SnapshotInterval}}"
# Log entries kept after a snapshot, so a slow follower can catch up from
# the log instead of a full snapshot.
TrailingLogs = {{.D.Raft.TrailingLogs}}
# Also snapshot once the log holds more bytes than half the newest snapshot,
# or than this many MB if more; TrailingLogs then keeps at most half that.
# This keeps raft.db within twice a snapshot's size whatever the entries'
# size (docs/configuration.md).
SnapshotLogMB = {{.D.Raft.SnapshotLogMB}}
# How soon followers and proxies learn that the last write is committed
# when no other write follows it (raft's own default is 50ms).
CommitTimeout = "{{.D.Raft.CommitTimeout}}"
# Where the raft log is kept: "wal" (segment files under raft/wal/, one
# fsync per append) or "bolt" (raft.db, two). A node whose log is in
# raft.db moves it to wal/ when it starts with "wal"; there is no way back.
LogStore = "{{.D.Raft.LogStore}}"

[Gossip]
# memberlist address (UDP and TCP) for capacity gossip and failure detection.
Addr = "{{.O.GossipAddr}}"
Advertise = ""
# Base64 AES key encrypting gossip. Every member needs the same key: start
# other members with 'vsm daemon init --secrets FILE'. Empty disables
# encryption.
Key = "{{.GossipKey}}"

# Where this node mounts each storage instance, when not at the instance's
# default path (see 'vsm storage list'). Paths must be absolute.
[StoragePaths]
# "store-1" = "/mnt/nfs/store-1"

[Chain]
# Full node API as a FULLNODE_API_INFO string, e.g.
# "eyJhbGci...:/ip4/127.0.0.1/tcp/1234/http". Empty: no chain (metadata only).
API = ""

[Gateway]
# sophon-gateways that "vsm daemon run --miner" registers every enabled miner
# with, to compute the WinningPoSt sophon-miner asks for; each entry is
# "TOKEN:/ip4/HOST/tcp/PORT" (damocles' Common.API.Gateway), e.g.
# API = ["eyJhbGci...:/ip4/10.0.0.5/tcp/45132"]
API = []

[PoSt]
# Epochs to wait past a deadline's challenge epoch before reading randomness.
Confidence = {{.D.PoSt.Confidence}}
# Partitions batched into one SubmitWindowedPoSt message, proven as one proof.
# Clamped in code to the miner actor's limit, min(25000 / partition sectors, 3),
# which is 3 for every sector size: a larger value acts as 3.
MaxPartitionsPerMessage = {{.D.PoSt.MaxPartitionsPerMessage}}
# Who sends PoSt and declaration messages: the worker or a control address of
# the miner, as an ID address (t0...). Empty: the worker.
Sender = ""
# Most fee one message may spend (Lotus's MaxWindowPoStGasFee default).
MaxFeeCap = "{{.D.PoSt.MaxFeeCap}}"
# Multiplies the node's gas limit estimate; 0 leaves the node's own.
GasOverEstimation = {{.D.PoSt.GasOverEstimation}}
# Fee cap as high as MaxFeeCap allows, so a rising base fee does not strand a proof.
MaximizeFeeCap = {{.D.PoSt.MaximizeFeeCap}}
# Epochs a message's receipt must be buried before it counts.
MessageConfidence = {{.D.PoSt.MessageConfidence}}
# Verify each WindowPoSt proof (on a child, against the on-chain SealedCIDs)
# before sending it; an invalid proof is made again once, then not sent.
VerifyProofs = {{.D.PoSt.VerifyProofs}}
`))
