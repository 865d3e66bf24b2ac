// Package config owns a node's home directory: the layout of its files,
// the node configuration (config.toml), and the secrets made at init.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"

	"github.com/BurntSushi/toml"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/gateway"
)

// Duration is a time.Duration written as "1s" or "500ms" in TOML.
type Duration time.Duration

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a value like 500ms, 1s or 2m", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Node is config.toml. `daemon init` writes it with comments; every key is
// described in docs/configuration.md.
type Node struct {
	Node   NodeSection
	Raft   RaftSection
	Gossip GossipSection
	// StoragePaths maps a storage instance name to where this node mounts
	// it, overriding the instance's default path.
	StoragePaths map[string]string
	Chain        ChainSection
	PoSt         PoStSection
	Gateway      GatewaySection
}

// NodeSection names the node and its addresses.
type NodeSection struct {
	ID            string
	Listen        string
	RaftAddr      string
	RaftAdvertise string
}

// RaftSection tunes raft.
type RaftSection struct {
	HeartbeatTimeout   Duration
	ElectionTimeout    Duration
	LeaderLeaseTimeout Duration
	SnapshotThreshold  uint64
	SnapshotInterval   Duration
	TrailingLogs       uint64
	// SnapshotLogMB: see cluster.Config.SnapshotLogBytes (a snapshot is
	// also taken once the log's bytes exceed the newest snapshot's size or
	// this, so raft.db stays about a snapshot's size).
	SnapshotLogMB uint64
	// CommitTimeout: see cluster.Config.CommitTimeout (how fast followers
	// and proxies learn of a commit when no further write follows).
	CommitTimeout Duration
	// LogStore is where the raft log is kept: "wal" (raft-wal segment
	// files under raft/wal/, the default) or "bolt" (raft.db). See
	// cluster.LogStoreWAL.
	LogStore string
}

// GossipSection configures memberlist.
type GossipSection struct {
	Addr      string
	Advertise string
	// Key is the base64 AES key (16, 24 or 32 bytes) encrypting gossip.
	Key string
}

// ChainSection says how to reach the full node.
type ChainSection struct {
	// API is a FULLNODE_API_INFO string: TOKEN:/ip4/HOST/tcp/PORT/http.
	API string
}

// GatewaySection lists the sophon-gateways a node started with --miner
// registers its miners with, to compute their WinningPoSt.
type GatewaySection struct {
	// API entries are TOKEN:MULTIADDR, as damocles' Common.API.Gateway
	// (see gateway.ParseAPIInfo).
	API []string
}

// PoStSection tunes proving.
type PoStSection struct {
	// Confidence is how many epochs past a deadline's challenge epoch the
	// runner waits before it reads the randomness and starts proving.
	Confidence uint64
	// MaxPartitionsPerMessage bounds the partitions batched in one
	// SubmitWindowedPoSt (one proof covers them all). The runner clamps it
	// in code to what the miner actor accepts, min(AddressedSectorsMax /
	// partition sectors, PoStedPartitionsMax) = 3 for every sector size in
	// use, so a larger value acts as 3; 0 also means that limit.
	MaxPartitionsPerMessage uint64
	// Sender sends PoSt and declaration messages: the miner's worker or
	// one of its control addresses, as an ID address (t0...). Empty: the
	// worker. An address that is neither is refused for every miner it
	// does not control (the actor would refuse its messages).
	Sender string
	// MaxFeeCap bounds the fee of each message (MessageSendSpec.MaxFee),
	// e.g. "5 FIL" (Lotus's MaxWindowPoStGasFee default) or "500 nanoFIL".
	MaxFeeCap string
	// GasOverEstimation multiplies the node's gas limit estimate; 0 leaves
	// the node's own (Lotus's GasLimitOverestimation is 1.25).
	GasOverEstimation float64
	// MaximizeFeeCap sets each message's fee cap to what MaxFeeCap allows,
	// so a rising base fee does not strand a proof (Lotus's
	// MaximizeWindowPoStFeeCap, default true).
	MaximizeFeeCap bool
	// MessageConfidence is how many epochs a message's receipt must be
	// buried before it counts (Lotus's build.MessageConfidence is 5).
	MessageConfidence uint64
	// VerifyProofs has a child verify each WindowPoSt proof against the
	// sectors' on-chain SealedCIDs before it is sent, as Lotus does: an
	// invalid proof is made again once, then not sent. Default true.
	VerifyProofs bool
}

// MaxFee parses MaxFeeCap to attoFIL (zero when empty: the node's default).
func (p PoStSection) MaxFee() (big.Int, error) {
	if strings.TrimSpace(p.MaxFeeCap) == "" {
		return big.Zero(), nil
	}
	v, err := fullnode.ParseFIL(p.MaxFeeCap)
	if err != nil {
		return big.Zero(), fmt.Errorf("PoSt.MaxFeeCap: %w", err)
	}
	return v, nil
}

// SenderAddress parses Sender (undefined when empty: the worker).
func (p PoStSection) SenderAddress() (address.Address, error) {
	s := strings.TrimSpace(p.Sender)
	if s == "" {
		return address.Undef, nil
	}
	a, err := address.NewFromString(s)
	if err != nil {
		return address.Undef, fmt.Errorf("PoSt.Sender %q: %w", s, err)
	}
	// MinerInfo lists the worker and control addresses in ID form, which
	// is what the sender is chosen among.
	if a.Protocol() != address.ID {
		return address.Undef, fmt.Errorf("PoSt.Sender %q: want the ID address (t0/f0) of the worker or a control address", s)
	}
	return a, nil
}

// DefaultMaxPartitionsPerMessage is the miner actor's PoStedPartitionsMax,
// the most partitions a SubmitWindowedPoSt may carry for every sector size
// in use (fullnode.MaxPartitionsPerPoSt).
const DefaultMaxPartitionsPerMessage = 3

// Defaults fills what a config file may leave out.
func Defaults() Node {
	return Node{
		Node: NodeSection{Listen: "127.0.0.1:1789", RaftAddr: "127.0.0.1:1790"},
		Raft: RaftSection{
			// Chosen by BenchmarkFailover and
			// BenchmarkElectionsUnderSaturation: see docs/configuration.md.
			HeartbeatTimeout:   Duration(300 * time.Millisecond),
			ElectionTimeout:    Duration(300 * time.Millisecond),
			LeaderLeaseTimeout: Duration(300 * time.Millisecond),
			SnapshotThreshold:  8192,
			SnapshotInterval:   Duration(2 * time.Minute),
			TrailingLogs:       10240,
			SnapshotLogMB:      16,
			CommitTimeout:      Duration(10 * time.Millisecond),
			LogStore:           "wal",
		},
		Gossip: GossipSection{Addr: "127.0.0.1:1791"},
		// Lotus's WindowPoSt sending defaults: MaxWindowPoStGasFee 5 FIL,
		// MaximizeWindowPoStFeeCap true, GasLimitOverestimation 1.25,
		// MessageConfidence 5.
		PoSt: PoStSection{Confidence: 4, MaxPartitionsPerMessage: DefaultMaxPartitionsPerMessage,
			MaxFeeCap: "5 FIL", GasOverEstimation: 1.25, MaximizeFeeCap: true, MessageConfidence: 5,
			VerifyProofs: true},
	}
}

// Parse reads config.toml text. Unknown keys are errors: a misspelt key
// silently ignored is a production incident waiting to happen.
func Parse(text []byte) (Node, error) {
	c := Defaults()
	md, err := toml.NewDecoder(bytes.NewReader(text)).Decode(&c)
	if err != nil {
		return Node{}, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return Node{}, fmt.Errorf("unknown keys %s; see docs/configuration.md for the valid ones", strings.Join(keys, ", "))
	}
	return c, c.Validate()
}

// Load reads and validates a config file.
func Load(path string) (Node, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Node{}, fmt.Errorf("config %s does not exist; run 'vsm daemon init' first", path)
		}
		return Node{}, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(text)
	if err != nil {
		return Node{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks values that parse but cannot work.
func (c Node) Validate() error {
	if c.Node.ID == "" {
		return errors.New("Node.ID is empty; it is the permanent id of this member")
	}
	for key, addr := range map[string]string{"Node.Listen": c.Node.Listen, "Node.RaftAddr": c.Node.RaftAddr, "Gossip.Addr": c.Gossip.Addr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s = %q: want HOST:PORT", key, addr)
		}
	}
	if ct := time.Duration(c.Raft.CommitTimeout); ct != 0 && (ct < time.Millisecond || ct > time.Duration(c.Raft.HeartbeatTimeout)) {
		return fmt.Errorf("Raft.CommitTimeout %v: give 1ms up to Raft.HeartbeatTimeout (%v); 10ms is the default", ct, time.Duration(c.Raft.HeartbeatTimeout))
	}
	if ls := c.Raft.LogStore; ls != "wal" && ls != "bolt" {
		return fmt.Errorf("Raft.LogStore = %q: want \"wal\" (the default) or \"bolt\"", ls)
	}
	if c.Raft.LeaderLeaseTimeout > c.Raft.HeartbeatTimeout {
		return errors.New("Raft.LeaderLeaseTimeout must not exceed Raft.HeartbeatTimeout")
	}
	if _, err := c.PoSt.MaxFee(); err != nil {
		return err
	}
	if _, err := c.PoSt.SenderAddress(); err != nil {
		return err
	}
	if g := c.PoSt.GasOverEstimation; g != 0 && (g < 1 || g > 10) {
		return fmt.Errorf("PoSt.GasOverEstimation = %g: want 0 (the node's own) or 1..10; below 1 runs messages out of gas", g)
	}
	if _, err := gateway.ParseGateways(c.Gateway.API); err != nil {
		return fmt.Errorf("Gateway.API: %w", err)
	}
	for name, p := range c.StoragePaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("StoragePaths.%s = %q: want an absolute path", name, p)
		}
	}
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }
