package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/internal/harness"
)

// winningChildren is an ext-prover.cfg with a WindowPoSt child and a
// WinningPoSt child ([[WinPost]], `vsm winpost`).
const winningChildren = `[[WdPost]]
ReadyTimeoutSecs = 20
[[WinPost]]
ReadyTimeoutSecs = 20
`

// TestWinningPoStThroughGateway is --miner end to end with real
// processes: a devnet whose gateway stand-in asks for the WinningPoSt of
// every round its election picks, and three members started with --miner
// --ext-prover, each registered for both miners. Every round from the
// moment all are registered is proven, by one member or another; then the
// member that answered last is killed -9 and the rounds after it are still
// proven in time, by the others.
func TestWinningPoStThroughGateway(t *testing.T) {
	start := time.Now()
	const epoch = 400 * time.Millisecond
	bin := harness.Binary(t)
	work := t.TempDir()
	spec := `Seed = "winning-e2e"
FirstDueEpoch = 1000000   # no WindowPoSt is judged: the members do not run --poster
[Mining]
ExpectedLeadersPerEpoch = 1.0
FirstEpoch = 1
[[Miners]]
ID = 1000
Sectors = 4
[[Miners]]
ID = 1001
Sectors = 4
`
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, spec)
	dnDir := filepath.Join(work, "dn")
	pc := &posterCluster{}
	pc.apiInfo, pc.devnet = startDevnetProcess(t, bin, dnDir, specPath, epoch)
	chain, err := fullnode.Dial(pc.apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc.chain = chain
	gw, err := os.ReadFile(filepath.Join(dnDir, devnet.GatewayInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	pc.nodes = startClusterWith(t, 3, func(i int, extraInit ...string) *harness.Node {
		n := harness.NewNode(t, fmt.Sprintf("n%d", i+1), extraInit...)
		writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), winningChildren)
		return n
	}, "--ext-prover", "--miner", "--gateway-api", strings.TrimSpace(string(gw)))
	pc.importSectors(t)
	ctx := context.Background()
	m0, m1 := fullnode.IDAddress(1000).String(), fullnode.IDAddress(1001).String()
	var conns map[string]int
	waitFor(t, 30*time.Second, func() bool {
		err := chain.Call(ctx, "Devnet.GatewayConnections", &conns)
		return err == nil && conns[m0] == 3 && conns[m1] == 3
	})
	head := func() abi.ChainEpoch {
		h, err := chain.ChainHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h.Height
	}
	report := func() devnet.Report {
		var rep devnet.Report
		if err := chain.Call(ctx, "Devnet.Report", &rep, -1); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	from := head() + 2
	t.Logf("3 members registered for 2 miners %v after start; judging rounds from %d", time.Since(start).Round(time.Millisecond), from)

	// provenSince waits for n proven rounds at or after round r and
	// returns them.
	provenSince := func(r abi.ChainEpoch, n int) []devnet.WinRecord {
		var got []devnet.WinRecord
		waitFor(t, 30*time.Second, func() bool {
			got = got[:0]
			for _, rec := range report().WinRecords {
				if rec.Round >= r && rec.Outcome == devnet.WinProven {
					got = append(got, rec)
				}
			}
			return len(got) >= n
		})
		return got
	}
	before := provenSince(from, 4)
	last := before[len(before)-1]
	victim := nodeOf(t, pc.nodes, last.Prover)
	victim.Kill()
	// The head once the victim is dead: round killedAt+1 was asked at
	// head killedAt, possibly just before the kill (the gateway picks a
	// channel arbitrarily, so the victim may have been asked and have
	// answered); every round from killedAt+2 on was asked after it.
	killedAt := head()
	t.Logf("round %d of t0%d proven by %s in %dms; killed %s, head %d once dead", last.Round, last.Miner, last.Prover, last.TookMs, victim.ID, killedAt)
	after := provenSince(killedAt+2, 4)
	to := after[len(after)-1].Round

	rep := report()
	byNode := map[string]int{}
	for _, rec := range rep.WinRecords {
		if rec.Round < from || rec.Round > to {
			continue
		}
		if rec.Outcome != devnet.WinProven {
			t.Errorf("round %d of t0%d: %s (%s)", rec.Round, rec.Miner, rec.Outcome, rec.Reason)
			continue
		}
		byNode[rec.Prover]++
		if rec.Round > killedAt+1 && strings.Contains(rec.Prover, "(node "+victim.ID+")") {
			t.Errorf("round %d proven by %s, dead at head %d", rec.Round, rec.Prover, killedAt)
		}
		if rec.TookMs > 5*60*1000 {
			t.Errorf("round %d took %dms, beyond the gateway's 5 minutes", rec.Round, rec.TookMs)
		}
	}
	first := after[0]
	t.Logf("rounds %d..%d proven per member %v; first round after the kill %d: %s, %d attempt(s), %dms; %s; test took %v",
		from, to, byNode, first.Round, first.Prover, first.Attempts, first.TookMs, rep.WinningString(), time.Since(start).Round(time.Second))
	out, err := exec.Command(bin, "devnet", "report", "--dir", dnDir, "--records", "5").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ROUND") || !regexp.MustCompile(`proven\s+vsm/dev \(node n\d\)`).Match(out) {
		t.Errorf("vsm devnet report: %v, want the elected rounds with their provers:\n%s", err, out)
	}
	var answered int
	for _, n := range pc.nodes {
		if n != victim && strings.Contains(n.Log(), "winning post computed") {
			answered++
		}
	}
	if answered == 0 {
		t.Error("no surviving member logged a computed winning post")
	}
}

// nodeOf finds the member named in a prover's User-Agent
// ("vsm/VERSION (node n2)").
func nodeOf(t *testing.T, nodes []*harness.Node, agent string) *harness.Node {
	t.Helper()
	for _, n := range nodes {
		if strings.Contains(agent, "(node "+n.ID+")") {
			return n
		}
	}
	t.Fatalf("no member in prover %q", agent)
	return nil
}

// TestMinerFlagRefusals: --miner without what it needs stops the daemon
// with an error that says what to add.
func TestMinerFlagRefusals(t *testing.T) {
	n := harness.NewNode(t, "w1")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no gateway", []string{"--miner", "--ext-prover"}, "--miner: needs a sophon-gateway: set Gateway.API in config.toml or give --gateway-api"},
		{"no children", []string{"--miner", "--gateway-api", "tok:/ip4/127.0.0.1/tcp/1"}, "--miner needs prover children: add --ext-prover"},
		{"gateway without token", []string{"--miner", "--ext-prover", "--gateway-api", "/ip4/127.0.0.1/tcp/1"}, "want TOKEN:/ip4/HOST/tcp/PORT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"--home", n.Home, "daemon", "run", "--bootstrap"}, tt.args...)
			out, err := exec.CommandContext(ctx, n.Bin, args...).CombinedOutput()
			if ctx.Err() != nil || err == nil || !strings.Contains(string(out), tt.want) {
				t.Fatalf("daemon run %v: %v; want it to stop saying %q:\n%s", tt.args, err, tt.want, out)
			}
		})
	}
}
