package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
	"github.com/vsm-project/vsm/rpc"
)

// importSectors writes n locations of miner t01000 on instance "s" to a
// file and imports it through the CLI.
func importSectors(t *testing.T, node *harness.Node, n int) {
	t.Helper()
	var buf bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&buf, `{"miner":1000,"number":%d,"sealed":"s","cache":"s"}`+"\n", i)
	}
	file := filepath.Join(t.TempDir(), "locs.jsonl")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	node.MustRun("sector", "location", "import", "--file", file, "--quiet")
}

// TestJoiningNodeNotReadyUntilCaughtUp (issue 11 item 2): a newly joined
// node used to report /healthz ok and answer "no location" for sectors that
// exist for about a second, before it had installed the leader's snapshot;
// a PoSter believing it would declare good sectors faulty. From its first
// answer on, the node must either refuse reads ("catching up") or answer
// with the location, and /healthz must not say ok before then.
func TestJoiningNodeNotReadyUntilCaughtUp(t *testing.T) {
	const sectors = 200_000
	nodes := startCluster(t, 1)
	n1 := nodes[0]
	n1.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n1.MustRun("storage", "add", "s", "--path", "/s")
	importSectors(t, n1, sectors)
	// The joiner then gets the state as a snapshot, as after any long life.
	if err := n1.Client(n1.Token()).Call(context.Background(), "VSM.SnapshotNow", nil); err != nil {
		t.Fatal(err)
	}

	secrets := filepath.Join(t.TempDir(), "s.json")
	n1.MustRun("cluster", "secrets", "export", secrets)
	n2 := harness.NewNode(t, "n2", "--secrets", secrets)
	n2.RunArgs = []string{"--join", n1.Gossip}
	n2.Start()

	// n2 writes its own token only once it serves; n1's is signed with
	// the same secret, so it works from n2's first answer on.
	cl := rpc.NewClient(n2.API, n1.Token())
	hc := &http.Client{Timeout: time.Second}
	probe := []fsm.SectorID{{Miner: 1000, Number: 1}, {Miner: 1000, Number: sectors}}
	var catchingUp, refused, healthyAt, answered int
	deadline := time.Now().Add(60 * time.Second)
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("n2 never served the location: %d rounds, %d refused; log:\n%s", round, refused, n2.Log())
		}
		healthy := false
		if resp, err := hc.Get("http://" + n2.API + "/healthz"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			healthy = resp.StatusCode == http.StatusOK
			if strings.Contains(string(body), "catching up") {
				catchingUp++
			}
		}
		ok := 0
		for _, id := range probe {
			var loc fsm.SectorLocation
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := cl.Call(ctx, "VSM.SectorLocationGet", &loc, id)
			cancel()
			switch {
			case err == nil:
				ok++
			case rpc.IsCode(err, rpc.CodeNotFound):
				t.Fatalf("round %d: n2 answered %v for sector %s, which exists (healthz ok: %v)", round, err, id, healthy)
			default:
				refused++
			}
		}
		if healthy && healthyAt == 0 {
			healthyAt = round
			if ok != len(probe) {
				// Healthy must mean reads are served; a read refused right
				// after is only acceptable if it was a transport error.
				t.Logf("round %d: healthy but %d of %d reads served", round, ok, len(probe))
			}
		}
		if ok == len(probe) {
			answered = round
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("n2 served reads from round %d (healthy from round %d); %d reads refused before, %d health checks said catching up", answered, healthyAt, refused, catchingUp)
	if healthyAt == 0 {
		n2.WaitHealthy(10 * time.Second)
	}
}
