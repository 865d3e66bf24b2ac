package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/internal/harness"
)

// startProxyOf starts a proxy with the original's documented command
// line: its own home, --proxy="" meaning the node whose home is
// --conf-dir, and an all-interfaces --listen=":PORT".
func startProxyOf(t testing.TB, src *harness.Node, name string, extra ...string) *harness.Node {
	t.Helper()
	proxy := harness.NewNode(t, name)
	port := proxy.API[strings.LastIndexByte(proxy.API, ':')+1:]
	proxy.RunArgs = append([]string{`--proxy=`, "--listen=:" + port, "--conf-dir=" + src.Home}, extra...)
	proxy.Start()
	proxy.WaitHealthy(30 * time.Second)
	return proxy
}

// proxyID reads the id the proxy chose for itself.
func proxyID(t testing.TB, proxy *harness.Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(proxy.Home, "proxy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var id struct {
		NodeID string `json:"node_id"`
	}
	if err := json.Unmarshal(b, &id); err != nil || id.NodeID == "" {
		t.Fatalf("proxy.json: %s %v", b, err)
	}
	return id.NodeID
}

func fetchURL(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProxyIsNonVoterFollowingInRealTime: the proxy joins the source's
// raft as a non-voter that is never promoted, sees each acknowledged write
// within milliseconds (the old proxy polled every 500 ms and copied the
// whole state), keeps serving with its data's age when the source is gone
// (also across its own restart), and follows again once the source is back.
func TestProxyIsNonVoterFollowingInRealTime(t *testing.T) {
	src := harness.NewNode(t, "source")
	src.RunArgs = []string{"--bootstrap"}
	src.Start()
	src.WaitHealthy(20 * time.Second)
	src.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	src.MustRun("storage", "add", "s", "--path", "/s")
	src.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "1", "--sealed", "s", "--cache", "s")

	proxy := startProxyOf(t, src, "poster")
	id := proxyID(t, proxy)
	if strings.Contains(proxy.Log(), `"node": "source"`) {
		t.Fatal("the proxy took the source's node id from the shared config")
	}

	// A non-voter in the source's raft, still one after the promotion delay.
	time.Sleep(4 * time.Second)
	var peers []cluster.Peer
	if err := src.Client(src.Token()).Call(context.Background(), "VSM.ClusterPeers", &peers); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(peers, func(p cluster.Peer) bool { return p.ID == id })
	if i < 0 || peers[i].Voter {
		t.Fatalf("the proxy %s should be a non-voter in the source's raft configuration: %+v", id, peers)
	}

	if out := src.MustRun("cluster", "members"); !strings.Contains(out, "S/PARTITION") || !strings.Contains(out, "proxy") {
		t.Fatalf("cluster members on the source should show s/partition and the proxy's role:\n%s", out)
	}

	// Lag: each write acknowledged by the source, then polled on the proxy.
	ctx := context.Background()
	sc, pc := src.Client(src.Token()), proxy.Client(proxy.Token())
	var lags []time.Duration
	for n := uint64(100); n < 130; n++ {
		loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: n}, Sealed: "s", Cache: "s"}
		if err := sc.Call(ctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc}); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		for {
			var got fsm.SectorLocation
			if err := pc.Call(ctx, "VSM.SectorLocationGet", &got, loc.SectorID); err == nil {
				break
			}
			if time.Since(acked) > 5*time.Second {
				t.Fatalf("sector %d not on the proxy 5 s after the source acknowledged it", n)
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(acked))
	}
	slices.Sort(lags)
	t.Logf("proxy lag over %d writes: p50 %v, max %v", len(lags), lags[len(lags)/2], lags[len(lags)-1])
	if p50 := lags[len(lags)/2]; p50 > 100*time.Millisecond {
		t.Fatalf("proxy lag p50 %v: a streaming proxy sees a write in milliseconds", p50)
	}
	if code, body := fetchURL(t, "http://"+proxy.API+"/healthz"); code != 200 || !strings.Contains(body, "current") {
		t.Fatalf("/healthz of a current proxy: %d %q", code, body)
	}

	// The source goes away: the proxy serves what it has and says how old.
	if err := src.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the proxy to notice its source is gone", func() bool {
		code, body := fetchURL(t, "http://"+proxy.API+"/healthz")
		return code == 200 && strings.Contains(body, "source unreachable; data as of")
	})
	proxy.MustRun("sector", "location", "get", "--miner", "t01000", "--number", "129")
	if _, body := fetchURL(t, "http://"+proxy.API+"/metrics"); !strings.Contains(body, "vsm_proxy_current 0") || !strings.Contains(body, "vsm_proxy_data_age_seconds") {
		t.Fatalf("metrics of a proxy without its source lack vsm_proxy_current 0 / vsm_proxy_data_age_seconds")
	}
	if _, body := fetchURL(t, "http://"+proxy.API+"/"); !strings.Contains(body, "data as of") {
		t.Fatalf("the status page of a proxy without its source does not say how old its data is")
	}

	// A proxy restarted while its source is down still serves its data.
	if err := proxy.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	proxy.Start()
	proxy.WaitHealthy(20 * time.Second)
	proxy.MustRun("sector", "location", "get", "--miner", "t01000", "--number", "129")
	if _, body := fetchURL(t, "http://"+proxy.API+"/healthz"); !strings.Contains(body, "data as of") {
		t.Fatalf("a restarted proxy without its source: /healthz %q", body)
	}

	// The source is back: the proxy follows again by itself.
	src.Start()
	src.WaitHealthy(20 * time.Second)
	src.MustRun("sector", "location", "put", "--miner", "t01000", "--number", "500", "--sealed", "s", "--cache", "s")
	waitUntil(t, 20*time.Second, "the proxy to follow its source again", func() bool {
		_, _, err := proxy.Run("sector", "location", "get", "--miner", "t01000", "--number", "500")
		code, body := fetchURL(t, "http://"+proxy.API+"/healthz")
		return err == nil && code == 200 && strings.Contains(body, "current")
	})
	// Writes through the proxy are refused and name the source.
	_, errOut, err := proxy.Run("sector", "location", "put", "--miner", "t01000", "--number", "9", "--sealed", "s", "--cache", "s")
	if err == nil || !strings.Contains(errOut, "read-only proxy") {
		t.Fatalf("write through the proxy: %v %s", err, errOut)
	}
}

func waitUntil(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProxyPosterProvesDeadlines runs the original's documented standalone
// PoSter literally (but for the binary's name): a source node with the
// chain in its config.toml, and
//
//	vsm --home=POSTER daemon run --proxy="" --poster --listen=":PORT" --conf-dir=SOURCE --ext-prover
//
// The proxy is the cluster's only poster, so the leader gives it every
// deadline and it records the outcomes through raft. Before issue 12 this
// command line was refused ("--poster needs a cluster member").
func TestProxyPosterProvesDeadlines(t *testing.T) {
	bin := harness.Binary(t)
	work := t.TempDir()
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, "Seed = \"proxy-poster\"\nFirstDueEpoch = 100\n[[Miners]]\nID = 1000\nSectorSize = \"2KiB\"\nSectors = 96\n")
	pc := &posterCluster{}
	pc.apiInfo, pc.devnet = startDevnetProcess(t, bin, filepath.Join(work, "dn"), specPath, 100*time.Millisecond)
	chain, err := fullnode.Dial(pc.apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc.chain = chain

	src := harness.NewNode(t, "source")
	cfgPath := filepath.Join(src.Home, "config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, strings.Replace(string(cfg), "API = \"\"", fmt.Sprintf("API = %q", pc.apiInfo), 1))
	writeFile(t, filepath.Join(src.Home, "ext-prover.cfg"), twoChildren)
	src.RunArgs = []string{"--bootstrap"}
	src.Start()
	src.WaitHealthy(20 * time.Second)
	pc.nodes = []*harness.Node{src}
	pc.importSectors(t)

	proxy := startProxyOf(t, src, "poster", "--poster", "--ext-prover")
	waitUntil(t, 90*time.Second, "the proxy to prove deadlines", func() bool {
		v, _ := metricValue(t, proxy, "vsm_deadlines_total", map[string]string{"outcome": "proven"})
		return v >= 2
	})
	// The outcomes are in the replicated state: the source sees them.
	if _, page := fetchURL(t, "http://"+src.API+"/"); !strings.Contains(page, proxyID(t, proxy)) || !strings.Contains(page, `class="o-proven">proven`) {
		t.Fatalf("the source's status page does not show the proxy's proven deadlines")
	}
}
