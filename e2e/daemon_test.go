// Package e2e runs real vsm processes: each test builds the binary, gives
// every node its own home and talks to it over HTTP and the CLI.
package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
	"github.com/vsm-project/vsm/rpc"
)

func startSingle(t *testing.T) *harness.Node {
	t.Helper()
	n := harness.NewNode(t, "n1")
	n.RunArgs = []string{"--bootstrap"}
	n.Start()
	n.WaitHealthy(20 * time.Second)
	return n
}

func expectedLocation(i int) fsm.SectorLocation {
	l := fsm.SectorLocation{
		SectorID:  fsm.SectorID{Miner: 1000 + uint64(i%2), Number: uint64(i)},
		Sealed:    []string{"store-a", "store-b"}[i%2],
		Cache:     []string{"store-b", "store-a"}[i%3%2],
		Upgraded:  i%5 == 0,
		SealProof: []uint8{3, 8, 13}[i%3], // 32 GiB seal proofs (V1, V1_1, synthetic), as the miners are
	}
	copy(l.CommR[:], fmt.Sprintf("%032d", i))
	return l
}

func TestImportSurvivesKill9(t *testing.T) {
	const total = 100_000
	n := startSingle(t)
	n.MustRun("miner", "add", "t01000", "--sector-size", "32GiB")
	n.MustRun("miner", "add", "t01001", "--sector-size", "32GiB") // expectedLocation's seal proofs are 32 GiB ones
	n.MustRun("storage", "add", "store-a", "--path", "/mnt/a")
	n.MustRun("storage", "add", "store-b", "--path", "/mnt/b", "--read-only")

	var buf bytes.Buffer
	for i := 0; i < total; i++ {
		l := expectedLocation(i)
		fmt.Fprintf(&buf, `{"miner":"t0%d","number":%d,"sealed":%q,"cache":%q,"upgraded":%v,"proof":%d,"commr":"%s"}`+"\n",
			l.Miner, l.Number, l.Sealed, l.Cache, l.Upgraded, l.SealProof, hex.EncodeToString(l.CommR[:]))
	}
	file := filepath.Join(t.TempDir(), "locs.jsonl")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := n.MustRun("sector", "location", "import", "--file", file, "--quiet")
	if !strings.Contains(out, fmt.Sprintf("imported %d locations", total)) {
		t.Fatalf("import said %q", out)
	}

	n.Kill() // kill -9: no chance to flush anything beyond what raft synced
	n.Start()
	n.WaitHealthy(30 * time.Second)

	count := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", "t01000", "--count"))
	count2 := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", "t01001", "--count"))
	if count != fmt.Sprint(total/2) || count2 != fmt.Sprint(total/2) {
		t.Fatalf("after kill -9: counts %s + %s, want %d in all", count, count2, total)
	}
	for _, i := range []int{0, 1, 4999, 50_000, total - 1} {
		var got fsm.SectorLocation
		js := n.MustRun("sector", "location", "get", "--miner", fmt.Sprint(1000+i%2), "--number", fmt.Sprint(i), "--json")
		if err := json.Unmarshal([]byte(js), &got); err != nil {
			t.Fatal(err)
		}
		if want := expectedLocation(i); !reflect.DeepEqual(got, want) {
			t.Fatalf("sector %d after restart:\n got %+v\nwant %+v", i, got, want)
		}
	}
	// Every location, not just samples, through the list API.
	cl := n.Client(n.Token())
	seen := 0
	for _, m := range []uint64{1000, 1001} {
		var locs []fsm.SectorLocation
		if err := cl.Call(context.Background(), "VSM.SectorLocationList", &locs, m, 0, 0); err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			if want := expectedLocation(int(l.Number)); !reflect.DeepEqual(l, want) {
				t.Fatalf("sector %d: got %+v want %+v", l.Number, l, want)
			}
			seen++
		}
	}
	if seen != total {
		t.Fatalf("listed %d locations, want %d", seen, total)
	}
}

func TestImportRejectsBadFileWithoutWriting(t *testing.T) {
	n := startSingle(t)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/mnt/s")
	tests := []struct{ name, file, content, want string }{
		{"bad json line", "a.jsonl", `{"miner":1000,"number":1,"sealed":"s","cache":"s"}` + "\n" + `{"miner":1000,"number":2,` + "\n", "line 2"},
		{"missing field", "b.jsonl", `{"miner":1000,"number":1,"sealed":"s"}` + "\n", `"cache"`},
		{"unknown field", "c.jsonl", `{"miner":1000,"number":1,"sealed":"s","cache":"s","colour":1}` + "\n", "colour"},
		{"bad commr", "d.jsonl", `{"miner":1000,"number":1,"sealed":"s","cache":"s","commr":"zz"}` + "\n", "commr"},
		{"csv without cache column", "e.csv", "miner,number,sealed\n1000,1,s\n", `column "cache" is required`},
		{"unknown instance", "f.csv", "miner,number,sealed,cache\nt01000,1,s,s\nt01000,2,s,nope\n", `"nope" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tt.file)
			os.WriteFile(p, []byte(tt.content), 0o644)
			_, errOut, err := n.Run("sector", "location", "import", "--file", p, "--quiet")
			if err == nil || !strings.Contains(errOut, tt.want) {
				t.Fatalf("err %v, stderr %q, want %q", err, errOut, tt.want)
			}
			if c := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", "t01000", "--count")); c != "0" {
				t.Fatalf("a failed import stored %s locations", c)
			}
		})
	}
}

func post(t *testing.T, url, token string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestAuthAndBadInput(t *testing.T) {
	n := startSingle(t)
	url := "http://" + n.API + "/rpc/v0"
	admin := n.Token()
	read := strings.TrimSpace(n.MustRun("auth", "create-token", "--perm", "read"))
	write := strings.TrimSpace(n.MustRun("auth", "create-token", "--perm", "write"))
	// A token signed by another home's secret.
	other := harness.NewNode(t, "other")
	foreign := strings.TrimSpace(other.MustRun("auth", "create-token", "--perm", "admin"))

	addMiner := `{"jsonrpc":"2.0","id":1,"method":"VSM.MinerAdd","params":[{"id":1000,"sector_size":2048,"post_proof":10,"partition_size":2,"enabled":true}]}`
	tests := []struct {
		name     string
		token    string
		body     string
		status   int
		code     int
		contains string
	}{
		{"no token", "", addMiner, 401, rpc.CodeUnauthorized, "missing token"},
		{"garbage token", "abc.def.ghi", addMiner, 401, rpc.CodeUnauthorized, "invalid token"},
		{"token of another cluster", foreign, addMiner, 401, rpc.CodeUnauthorized, "signature"},
		{"read token cannot write", read, addMiner, 403, rpc.CodeForbidden, "needs a write token"},
		{"write token cannot snapshot", write, `{"jsonrpc":"2.0","id":1,"method":"VSM.SnapshotNow","params":[]}`, 403, rpc.CodeForbidden, "needs a admin token"},
		{"malformed json", admin, `{"jsonrpc":"2.0","id":1,"method":`, 200, rpc.CodeParse, "malformed"},
		{"truncated request", admin, addMiner[:len(addMiner)/2], 200, rpc.CodeParse, "malformed"},
		{"unknown method", admin, `{"jsonrpc":"2.0","id":1,"method":"VSM.Nope","params":[]}`, 200, rpc.CodeMethodNotFound, "VSM.Nope"},
		{"wrong param type", admin, `{"jsonrpc":"2.0","id":1,"method":"VSM.MinerGet","params":["x"]}`, 200, rpc.CodeInvalidParams, "param 1"},
		{"too many params", admin, `{"jsonrpc":"2.0","id":1,"method":"VSM.MinerGet","params":[1,2]}`, 200, rpc.CodeInvalidParams, "want 1 params"},
		{"unknown field", admin, `{"jsonrpc":"2.0","id":1,"method":"VSM.StorageAdd","params":[{"name":"x","colour":"red"}]}`, 200, rpc.CodeInvalidParams, "colour"},
		{"not jsonrpc 2.0", admin, `{"id":1,"method":"VSM.MinerList","params":[]}`, 200, rpc.CodeInvalidRequest, "2.0"},
		{"oversized body", admin, `{"jsonrpc":"2.0","id":1,"method":"VSM.MinerList","params":["` + strings.Repeat("x", rpc.DefaultMaxBody) + `"]}`, 413, rpc.CodeTooLarge, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, url, tt.token, []byte(tt.body))
			var resp struct{ Error *rpc.Error }
			if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Error == nil {
				t.Fatalf("status %d body %.300q: not a JSON-RPC error", status, body)
			}
			if status != tt.status || resp.Error.Code != tt.code || !strings.Contains(resp.Error.Message, tt.contains) {
				t.Fatalf("got %d %+v, want %d code %d containing %q", status, resp.Error, tt.status, tt.code, tt.contains)
			}
		})
	}
	// Nothing above changed state, and the daemon still serves.
	var ms []fsm.MinerSummary
	if err := n.Client(read).Call(context.Background(), "VSM.MinerList", &ms); err != nil || len(ms) != 0 {
		t.Fatalf("after bad requests: miners %v, err %v", ms, err)
	}
	if status, _ := post(t, url, write, []byte(addMiner)); status != 200 {
		t.Fatalf("a valid write failed after bad input: %d", status)
	}
	if err := n.Client(read).Call(context.Background(), "VSM.MinerList", &ms); err != nil || len(ms) != 1 {
		t.Fatalf("miners %v, err %v", ms, err)
	}
}

func TestInitTwiceChangesNothing(t *testing.T) {
	n := harness.NewNode(t, "n1")
	cfg, _ := os.ReadFile(filepath.Join(n.Home, "config.toml"))
	secret, _ := os.ReadFile(filepath.Join(n.Home, "jwt-secret"))
	out := n.MustRun("daemon", "init", "--node-id", "different")
	if !strings.Contains(out, "already initialised") {
		t.Fatalf("second init said %q", out)
	}
	cfg2, _ := os.ReadFile(filepath.Join(n.Home, "config.toml"))
	secret2, _ := os.ReadFile(filepath.Join(n.Home, "jwt-secret"))
	if !bytes.Equal(cfg, cfg2) || !bytes.Equal(secret, secret2) {
		t.Fatal("second init changed the home")
	}
	ext, _ := os.ReadFile(filepath.Join(n.Home, "ext-prover.cfg"))
	for _, want := range []string{`#Bin = "vsm"`, `#Args = ["wdpost"]`, `#Concurrent = 1`, `#Weight = 1`, `#KEY = "VAL"`} {
		if !bytes.Contains(ext, []byte(want)) {
			t.Errorf("default ext-prover.cfg lacks %s", want)
		}
	}
}

func TestMalformedConfigIsRefusedClearly(t *testing.T) {
	n := harness.NewNode(t, "n1")
	p := filepath.Join(n.Home, "config.toml")
	cfg, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(cfg, []byte("[Raft]"), []byte("[Raft]\nHeartbeatTimeot = \"1s\""), 1), 0o600)
	_, errOut, err := n.Run("daemon", "run", "--bootstrap")
	if err == nil || !strings.Contains(errOut, "unknown keys Raft.HeartbeatTimeot") {
		t.Fatalf("err %v stderr %q", err, errOut)
	}
}
