package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/internal/harness"
)

// originalManager stands in for a damocles-manager (venus-sector-manager):
// go-jsonrpc over HTTP POST on /rpc/v0, no token, method
// Venus.SectorIndexerFind(kind, abi.SectorID) -> core.SectorIndexLocation.
// index maps sector number to its persist stores; absent sectors are
// {Found: false}, as the original's indexer answers.
func originalManager(t *testing.T, miner uint64, index map[uint64][2]string) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID     json.RawMessage   `json:"id"`
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		if r.URL.Path != "/rpc/v0" || json.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		reply := func(result any, errMsg string) {
			out := map[string]any{"jsonrpc": "2.0", "id": req.ID}
			if errMsg != "" {
				out["error"] = map[string]any{"code": 1, "message": errMsg}
			} else {
				out["result"] = result
			}
			_ = json.NewEncoder(w).Encode(out)
		}
		if req.Method != "Venus.SectorIndexerFind" || len(req.Params) != 2 {
			reply(nil, "method '"+req.Method+"' not found")
			return
		}
		calls.Add(1)
		var kind string
		var sid struct{ Miner, Number uint64 }
		if json.Unmarshal(req.Params[0], &kind) != nil || json.Unmarshal(req.Params[1], &sid) != nil {
			reply(nil, "unmarshaling params")
			return
		}
		if kind != "normal" && kind != "upgrade" {
			reply(nil, fmt.Sprintf("sector indexer of type %s is not supported", kind))
			return
		}
		type stores struct{ SealedFile, CacheDir string }
		loc, ok := index[sid.Number]
		if sid.Miner != miner || !ok {
			reply(struct {
				Found    bool
				Instance stores
			}{}, "")
			return
		}
		reply(struct {
			Found    bool
			Instance stores
		}{true, stores{loc[0], loc[1]}}, "")
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// TestImportFromOriginalManager migrates a miner with no export step: the
// sectors from the devnet's chain, their persist stores from a stand-in
// that answers as the original manager does, CommR and proof type from the
// chain.
func TestImportFromOriginalManager(t *testing.T) {
	bin := harness.Binary(t)
	work := t.TempDir()
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, "Seed = \"manager-import\"\nFirstDueEpoch = 100000\n[[Miners]]\nID = 1000\nSectorSize = \"2KiB\"\nSectors = 12\n")
	apiInfo, _ := startDevnetProcess(t, bin, filepath.Join(work, "dn"), specPath, time.Second)
	chain, err := fullnode.Dial(apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}

	index := map[uint64][2]string{}
	for n := uint64(0); n < 12; n++ {
		if n == 4 || n == 5 {
			continue // sealed elsewhere: the original has no record of them
		}
		index[n] = [2]string{"store-a", map[bool]string{true: "store-a", false: "store-b"}[n%2 == 0]}
	}
	mgr, calls := originalManager(t, 1000, index)

	n := harness.NewNode(t, "n1")
	n.RunArgs = []string{"--bootstrap"}
	n.Start()
	n.WaitHealthy(20 * time.Second)
	n.MustRun("miner", "add", "f01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "store-a", "--path", "/mnt/a")

	// store-b is unknown to vsm: refused before anything is written.
	_, errOut, err := n.Run("sector", "location", "import", "--from-damocles-manager", mgr.URL, "--miner", "1000", "--chain-api", apiInfo, "--quiet")
	if err == nil || !strings.Contains(errOut, "store-b") || !strings.Contains(errOut, "vsm storage add") || !strings.Contains(errOut, "nothing was imported") {
		t.Fatalf("import with a persist store vsm lacks: %v\n%s", err, errOut)
	}
	if out := n.MustRun("sector", "location", "list", "--miner", "t01000", "--count"); strings.TrimSpace(out) != "0" {
		t.Fatalf("a refused import stored %s locations", out)
	}

	n.MustRun("storage", "add", "store-b", "--path", "/mnt/b")
	out, errOut, err := n.Run("sector", "location", "import", "--from-damocles-manager", mgr.URL, "--miner", "t01000", "--chain-api", apiInfo)
	if exitCode(err) != 1 || !strings.Contains(out, "imported 10 locations") || !strings.Contains(errOut, "4-5") || !strings.Contains(errOut, "not in the manager's sector indexer") {
		t.Fatalf("import from the manager: exit %d\nstdout: %s\nstderr: %s", exitCode(err), out, errOut)
	}
	if !strings.Contains(errOut, "12/12") {
		t.Errorf("no progress bar on stderr:\n%s", errOut)
	}
	if calls.Load() < 12 {
		t.Errorf("the manager was asked %d times for 12 sectors", calls.Load())
	}
	for _, num := range []uint64{0, 3, 11} {
		var got fsm.SectorLocation
		if err := n.Client(n.Token()).Call(context.Background(), "VSM.SectorLocationGet", &got, fsm.SectorID{Miner: 1000, Number: num}); err != nil {
			t.Fatal(err)
		}
		si, err := chain.StateSectorGetInfo(context.Background(), fullnode.IDAddress(1000), abi.SectorNumber(num), nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
		if err != nil {
			t.Fatal(err)
		}
		var commR [32]byte
		copy(commR[:], raw)
		if got.Sealed != index[num][0] || got.Cache != index[num][1] || got.CommR != commR || got.SealProof != uint8(si.SealProof) {
			t.Errorf("sector %d: %+v, want stores %v, CommR %x, proof %d from the chain", num, got, index[num], commR, si.SealProof)
		}
	}
}

// TestLocationPutTakesCommRFromChain: `sector location put` without
// --commr used to store a zero CommR, and proving check then blamed the
// files. With a chain it takes CommR and the proof type from
// StateSectorGetInfo; without one it says plainly that the sector cannot be
// proven; a proof type for another sector size is refused.
func TestLocationPutTakesCommRFromChain(t *testing.T) {
	bin := harness.Binary(t)
	work := t.TempDir()
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, "Seed = \"put-commr\"\nFirstDueEpoch = 100000\n[[Miners]]\nID = 1000\nSectorSize = \"2KiB\"\nSectors = 3\n")
	apiInfo, _ := startDevnetProcess(t, bin, filepath.Join(work, "dn"), specPath, time.Second)
	chain, err := fullnode.Dial(apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := harness.NewNode(t, "n1")
	n.RunArgs = []string{"--bootstrap"}
	n.Start()
	n.WaitHealthy(20 * time.Second)
	n.MustRun("miner", "add", "1000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/s")

	n.MustRun("sector", "location", "put", "--miner", "f01000", "--number", "2", "--sealed", "s", "--cache", "s", "--chain-api", apiInfo)
	var got fsm.SectorLocation
	if err := n.Client(n.Token()).Call(context.Background(), "VSM.SectorLocationGet", &got, fsm.SectorID{Miner: 1000, Number: 2}); err != nil {
		t.Fatal(err)
	}
	si, err := chain.StateSectorGetInfo(context.Background(), fullnode.IDAddress(1000), abi.SectorNumber(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.CommR[:]) != string(raw) || got.SealProof != uint8(si.SealProof) {
		t.Fatalf("put without --commr stored CommR %x proof %d; the chain has %x proof %d", got.CommR, got.SealProof, raw, si.SealProof)
	}

	// No chain: stored, but said plainly.
	_, errOut, err := n.Run("sector", "location", "put", "--miner", "t01000", "--number", "7", "--sealed", "s", "--cache", "s")
	if err != nil || !strings.Contains(errOut, "WITHOUT CommR") || !strings.Contains(errOut, "--commr") {
		t.Fatalf("put without CommR or chain: %v\n%s", err, errOut)
	}
	// A 32 GiB seal proof type for a 2 KiB miner is refused.
	_, errOut, err = n.Run("sector", "location", "put", "--miner", "t01000", "--number", "8", "--sealed", "s", "--cache", "s", "--proof", "8", "--commr", strings.Repeat("ab", 32))
	if err == nil || !strings.Contains(errOut, "32GiB") || !strings.Contains(errOut, "2KiB") {
		t.Fatalf("put with a 32 GiB proof type for a 2 KiB miner: %v\n%s", err, errOut)
	}
}
