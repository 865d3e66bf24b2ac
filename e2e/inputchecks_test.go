package e2e

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
	"github.com/vsm-project/vsm/rpc"
)

// TestInputChecks (issue 11 item 9): the API accepted what the CLI
// refused and more. Each bad input gets a clear error and changes nothing.
func TestInputChecks(t *testing.T) {
	n := startSingle(t)
	cl := n.Client(n.Token())
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		in   fsm.StorageInstance
		want string
	}{
		{"relative path", fsm.StorageInstance{Name: "a", Path: "mnt/a"}, "want an absolute path"},
		{"NUL in path", fsm.StorageInstance{Name: "a", Path: "/mnt/a\x00b"}, "U+0000"},
		{"NUL in name", fsm.StorageInstance{Name: "a\x00", Path: "/mnt/a"}, "U+0000"},
		{"direction override in name", fsm.StorageInstance{Name: "store-\u202e1-a", Path: "/mnt/a"}, "U+202E"},
		{"100 KB name", fsm.StorageInstance{Name: strings.Repeat("x", 100<<10), Path: "/mnt/a"}, "at most 128"},
		{"empty name", fsm.StorageInstance{Name: "", Path: "/mnt/a"}, "storage name is empty"},
	} {
		err := cl.Call(ctx, "VSM.StorageAdd", nil, tt.in)
		if !rpc.IsCode(err, rpc.CodeInvalidParams) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want code %d and %q", tt.name, err, rpc.CodeInvalidParams, tt.want)
		}
	}
	if _, errOut, err := n.Run("storage", "add", "b\u202e", "--path", "/mnt/b"); err == nil || !strings.Contains(errOut, "U+202E") {
		t.Errorf("CLI storage add with an override character: %v %s", err, errOut)
	}
	var ss []fsm.StorageSummary
	if err := cl.Call(ctx, "VSM.StorageList", &ss); err != nil || len(ss) != 0 {
		t.Fatalf("refused instances were stored: %+v %v", ss, err)
	}

	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/mnt/s")
	tooBig := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: math.MaxUint64}, Sealed: "s", Cache: "s"}
	if err := cl.Call(ctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{tooBig}); !rpc.IsCode(err, rpc.CodeInvalidParams) || !strings.Contains(err.Error(), "2^63-1") {
		t.Errorf("sector 2^64-1 through the API: %v", err)
	}
	if _, errOut, err := n.Run("sector", "location", "put", "--miner", "t01000", "--number", "18446744073709551615", "--sealed", "s", "--cache", "s"); err == nil || !strings.Contains(errOut, "2^63-1") {
		t.Errorf("sector 2^64-1 through the CLI: %v %s", err, errOut)
	}
	file := filepath.Join(t.TempDir(), "big.jsonl")
	if err := os.WriteFile(file, []byte(`{"miner":1000,"number":18446744073709551615,"sealed":"s","cache":"s"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := n.Run("sector", "location", "import", "--file", file); err == nil || !strings.Contains(errOut, "2^63-1") {
		t.Errorf("sector 2^64-1 through import: %v %s", err, errOut)
	}
	if c := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", "t01000", "--count")); c != "0" {
		t.Fatalf("refused sectors were stored: %s", c)
	}
	maxOK := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: math.MaxInt64}, Sealed: "s", Cache: "s"}
	if err := cl.Call(ctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{maxOK}); err != nil {
		t.Errorf("sector 2^63-1 is valid: %v", err)
	}
}

// TestBadGossipKeyWritesNoRaftState (issue 11 item 9): a bad Gossip.Key was
// found only after raft state had been written.
func TestBadGossipKeyWritesNoRaftState(t *testing.T) {
	n := harness.NewNode(t, "k1")
	cfg := filepath.Join(n.Home, "config.toml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^Key = ".*"$`).ReplaceAll(b, []byte(`Key = "not-base64!"`))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n.RunArgs = []string{"--bootstrap"}
	n.Start()
	if !n.WaitExit(20 * time.Second) {
		t.Fatalf("started with a bad Gossip.Key; log:\n%s", n.Log())
	}
	if !strings.Contains(n.Log(), "Gossip.Key in config.toml must be base64") {
		t.Fatalf("log does not explain the bad key:\n%s", n.Log())
	}
	if _, err := os.Stat(filepath.Join(n.Home, "raft", "raft.db")); err == nil {
		t.Fatal("raft.db was written before the gossip key was checked")
	}
}

// TestJoinMistakesAreNamed (issue 11 item 9): joining a member's HTTP port
// was reported as a gossip key mismatch, and a second node with an id
// already in use left only a low-level gossip log line.
func TestJoinMistakesAreNamed(t *testing.T) {
	nodes := startCluster(t, 1)
	n1 := nodes[0]
	secrets := filepath.Join(t.TempDir(), "s.json")
	n1.MustRun("cluster", "secrets", "export", secrets)

	x := harness.NewNode(t, "x1", "--secrets", secrets)
	x.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, err := x.Run("cluster", "status"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("x1 never served its API:\n%s", x.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, errOut, err := x.Run("cluster", "join", n1.API)
	if err == nil || !strings.Contains(errOut, "API port") || strings.Contains(errOut, "another Gossip.Key") {
		t.Errorf("join of the API port: %v %s", err, errOut)
	}
	_, errOut, err = x.Run("cluster", "join", n1.Raft)
	if err == nil || !strings.Contains(errOut, "raft port") || strings.Contains(errOut, "another Gossip.Key") {
		t.Errorf("join of the raft port: %v %s", err, errOut)
	}

	dup := harness.NewNode(t, n1.ID, "--secrets", secrets) // same id, own home and ports
	dup.RunArgs = []string{"--join", n1.Gossip}
	dup.Start()
	if !dup.WaitExit(30 * time.Second) {
		t.Fatalf("a node with a duplicate id kept running; log:\n%s", dup.Log())
	}
	if want := "node id " + n1.ID + " is already used by the member at " + n1.Gossip; !strings.Contains(dup.Log(), want) {
		t.Fatalf("duplicate id not explained (want %q):\n%s", want, dup.Log())
	}
	if peers := peersOf(t, n1); len(peers) != 1 {
		t.Fatalf("the duplicate changed the configuration: %+v", peers)
	}
	n1.WaitHealthy(5 * time.Second)
}
