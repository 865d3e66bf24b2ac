package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/internal/harness"
)

// TestProxyNodeFollowsSource starts a source node and a proxy node as the
// original's standalone-PoSter documentation does (proxy home initialised
// on its own, config files shared with --conf-dir, --proxy pointing at the
// source) and checks the proxy serves the source's locations, new writes
// included, and refuses writes.
func TestProxyNodeFollowsSource(t *testing.T) {
	src := harness.NewNode(t, "source")
	src.RunArgs = []string{"--bootstrap"}
	src.Start()
	src.WaitHealthy(20 * time.Second)
	src.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	src.MustRun("storage", "add", "s", "--path", "/s")
	src.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "1", "--sealed", "s", "--cache", "s")

	for _, tc := range []struct{ name, proxyArg string }{
		{"explicit address", "--proxy=" + src.API},
		{"empty address means the conf-dir node", `--proxy=`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := harness.NewNode(t, "poster")
			proxy.RunArgs = []string{tc.proxyArg, "--listen", proxy.API, "--conf-dir", src.Home}
			proxy.Start()
			proxy.WaitHealthy(20 * time.Second)
			get := func(num string) (fsm.SectorLocation, error) {
				out, errOut, err := proxy.Run("sector", "location", "get", "--miner", "t01000", "--number", num, "--json")
				if err != nil {
					return fsm.SectorLocation{}, &cliError{errOut}
				}
				var l fsm.SectorLocation
				return l, json.Unmarshal([]byte(out), &l)
			}
			if l, err := get("1"); err != nil || l.Sealed != "s" {
				t.Fatalf("proxy get 1: %+v %v", l, err)
			}
			// A write on the source shows up on the proxy in real time.
			num := map[string]string{"explicit address": "2", "empty address means the conf-dir node": "3"}[tc.name]
			src.MustRun("sector", "location", "put", "--miner", "t01000", "--number", num, "--sealed", "s", "--cache", "s", "--upgraded")
			deadline := time.Now().Add(5 * time.Second)
			for {
				l, err := get(num)
				if err == nil && l.Upgraded {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the proxy did not follow the source's write within 5 s: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// A consistent read through the proxy re-reads the source.
			src.MustRun("sector", "location", "delete", "--miner", "t01000", "--number", num)
			if _, errOut, err := proxy.Run("sector", "location", "get", "--miner", "t01000", "--number", num, "--consistent"); err == nil || !strings.Contains(errOut, "no location") {
				t.Fatalf("consistent read through the proxy saw a deleted location: %v %s", err, errOut)
			}
			_, errOut, err := proxy.Run("sector", "location", "put", "--miner", "t01000", "--number", "9", "--sealed", "s", "--cache", "s")
			if err == nil || !strings.Contains(errOut, "read-only proxy") || !strings.Contains(errOut, src.API) {
				t.Fatalf("write through the proxy: %v %s", err, errOut)
			}
			if err := proxy.Stop(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestProxySectorIndexerOffUsesOwnStore(t *testing.T) {
	src := harness.NewNode(t, "source")
	src.RunArgs = []string{"--bootstrap"}
	src.Start()
	src.WaitHealthy(20 * time.Second)
	src.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")

	own := harness.NewNode(t, "poster")
	own.RunArgs = []string{"--proxy=" + src.API, "--proxy-sector-indexer-off"}
	own.Start()
	own.WaitHealthy(20 * time.Second)
	if out := own.MustRun("miner", "list"); strings.Contains(out, "t01000") {
		t.Fatalf("with the indexer off the node must use its own store, but it shows the source's miner:\n%s", out)
	}
	own.MustRun("miner", "add", "t02000", "--sector-size", "2KiB")
	if out := src.MustRun("miner", "list"); strings.Contains(out, "t02000") {
		t.Fatal("a write to the indexer-off node reached the source")
	}
}

type cliError struct{ stderr string }

func (e *cliError) Error() string { return e.stderr }
