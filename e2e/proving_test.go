package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness"
)

// twoChildren is an ext-prover.cfg with two real `vsm wdpost` children
// (Bin empty: the daemon's own binary; Args default ["wdpost"]).
const twoChildren = `# two children, as for two GPUs
[[WdPost]]
Concurrent = 2
ReadyTimeoutSecs = 20
[WdPost.Envs]
TMPDIR = "/tmp"

[[WdPost]]
Args = ["wdpost", "--parallel-reads", "4"]
Concurrent = 2
Weight = 2
ReadyTimeoutSecs = 20
`

// createdSector is one record of `vsm util sector create --json` (the
// import format) and the files it stands for.
type createdSector struct {
	Number     uint64 `json:"number"`
	SealProof  int64  `json:"proof"`
	CommR      string `json:"commr"`
	SealedFile string `json:"-"`
	CacheDir   string `json:"-"`
}

type checkResult struct {
	Sector uint64 `json:"sector"`
	Good   bool   `json:"good"`
	Reason string `json:"reason"`
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startProverNode starts a bootstrapped node with --ext-prover and the
// two-child ext-prover.cfg, and waits until both children are ready.
func startProverNode(t *testing.T) *harness.Node {
	t.Helper()
	n := harness.NewNode(t, "n1")
	writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), twoChildren)
	n.RunArgs = []string{"--bootstrap", "--ext-prover"}
	n.Start()
	n.WaitHealthy(30 * time.Second)
	if log := n.Log(); !strings.Contains(log, "ext-prover children started") || strings.Count(log, "ext-prover\tready\t") != 2 {
		t.Fatalf("log does not show two ready children:\n%s", log)
	}
	return n
}

// loadSectors creates 20 real 2 KiB sectors of t01000 under a storage
// instance and imports their locations with their comm_r.
func loadSectors(t *testing.T, n *harness.Node) map[uint64]createdSector {
	t.Helper()
	dir := t.TempDir()
	out := n.MustRun("util", "sector", "create", "--miner", "t01000", "--number", "1", "--count", "20", "--size", "2KiB", "--dir", dir, "--storage", "store1", "--json")
	sectors := map[uint64]createdSector{}
	var jsonl bytes.Buffer
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var s createdSector
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("util sector create --json line %q: %v", sc.Text(), err)
		}
		s.SealedFile = filepath.Join(dir, "sealed", fmt.Sprintf("s-t01000-%d", s.Number))
		s.CacheDir = filepath.Join(dir, "cache", fmt.Sprintf("s-t01000-%d", s.Number))
		sectors[s.Number] = s
		// Imported as printed: one format for both commands.
		jsonl.WriteString(sc.Text() + "\n")
	}
	if len(sectors) != 20 {
		t.Fatalf("created %d sectors, want 20:\n%s", len(sectors), out)
	}
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "store1", "--path", dir)
	file := filepath.Join(t.TempDir(), "locs.jsonl")
	writeFile(t, file, jsonl.String())
	if out := n.MustRun("sector", "location", "import", "--file", file, "--quiet"); !strings.Contains(out, "imported 20 locations") {
		t.Fatalf("import said %q", out)
	}
	return sectors
}

func checkJSON(t *testing.T, n *harness.Node, args ...string) ([]checkResult, int) {
	t.Helper()
	out, errOut, err := n.Run(append([]string{"proving", "check", "--miner", "t01000", "--json"}, args...)...)
	var res []checkResult
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		t.Fatalf("proving check --json: %v (exit %d)\nstdout: %s\nstderr: %s", jerr, exitCode(err), out, errOut)
	}
	return res, exitCode(err)
}

func TestProvingCheckFindsExactlyTheBrokenSectors(t *testing.T) {
	n := startProverNode(t)
	sectors := loadSectors(t, n)

	out, errOut, err := n.Run("proving", "check", "--miner", "t01000")
	if err != nil {
		t.Fatalf("all sectors good, but proving check failed: %v\nstdout: %s\nstderr: %s\nlog:\n%s", err, out, errOut, n.Log())
	}
	if !strings.Contains(out, "checked 20 sectors of t01000") || !strings.Contains(out, "20 good, 0 faulty") || strings.Contains(out, "faulty\t") {
		t.Fatalf("proving check of good sectors said:\n%s", out)
	}
	res, code := checkJSON(t, n)
	if code != 0 || len(res) != 20 {
		t.Fatalf("--json: exit %d, %d results", code, len(res))
	}
	for i, r := range res {
		if r.Sector != uint64(i+1) || !r.Good || r.Reason != "" {
			t.Fatalf("--json result %d: %+v", i, r)
		}
	}

	// Break two sectors: corrupt sector 5's replica, delete sector 12's cache.
	data, err := os.ReadFile(sectors[5].SealedFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0x5a
	}
	writeFile(t, sectors[5].SealedFile, string(data))
	if err := os.RemoveAll(sectors[12].CacheDir); err != nil {
		t.Fatal(err)
	}

	out, errOut, err = n.Run("proving", "check", "--miner", "t01000")
	if exitCode(err) != 1 {
		t.Fatalf("two broken sectors: exit %d (%v), want 1\nstdout: %s\nstderr: %s", exitCode(err), err, out, errOut)
	}
	t.Logf("proving check with two broken sectors:\n%s%s", out, errOut)
	var faultyLines []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, "faulty") && !strings.HasPrefix(l, "checked") {
			faultyLines = append(faultyLines, l)
		}
	}
	if len(faultyLines) != 2 || !strings.HasPrefix(faultyLines[0], "s-t01000-5 ") || !strings.HasPrefix(faultyLines[1], "s-t01000-12 ") {
		t.Fatalf("want exactly s-t01000-5 and s-t01000-12 listed as faulty, got:\n%s", out)
	}
	if !strings.Contains(faultyLines[0], "does not hash to the tree-r-last root") || !strings.Contains(faultyLines[1], "p_aux") {
		t.Fatalf("faulty sectors without their reasons:\n%s", out)
	}
	if !strings.Contains(out, "18 good, 2 faulty") || !strings.Contains(errOut, "2 of 20 sectors of t01000 are faulty") {
		t.Fatalf("summary: stdout\n%s\nstderr\n%s", out, errOut)
	}

	res, code = checkJSON(t, n)
	if code != 1 || len(res) != 20 {
		t.Fatalf("--json with broken sectors: exit %d, %d results", code, len(res))
	}
	for _, r := range res {
		if bad := r.Sector == 5 || r.Sector == 12; r.Good == bad || (bad && r.Reason == "") {
			t.Errorf("--json sector %d: %+v", r.Sector, r)
		}
	}

	// --sectors: a listed sector the store does not know is faulty too.
	res, code = checkJSON(t, n, "--sectors", "1-3,99")
	if code != 1 || len(res) != 4 || !res[0].Good || !res[2].Good || res[3].Sector != 99 || res[3].Good || !strings.Contains(res[3].Reason, "no location") {
		t.Fatalf("--sectors 1-3,99: exit %d, %+v", code, res)
	}
	if _, errOut, err := n.Run("proving", "check", "--miner", "t09999"); err == nil || !strings.Contains(errOut, "t09999 is not known") {
		t.Fatalf("unknown miner: %v, stderr %s", err, errOut)
	}
}

func TestProvingConfDirStartsChildrenFromOtherHome(t *testing.T) {
	n1 := harness.NewNode(t, "n1")
	writeFile(t, filepath.Join(n1.Home, "ext-prover.cfg"), twoChildren)
	n2 := harness.NewNode(t, "n2")
	if err := os.Remove(filepath.Join(n2.Home, "ext-prover.cfg")); err != nil {
		t.Fatal(err)
	}
	// --conf-dir also reads config.toml from n1's home, so give n2 its own
	// id and addresses on the command line.
	n2.RunArgs = []string{"--bootstrap", "--ext-prover", "--conf-dir", n1.Home,
		"--node-id", n2.ID, "--listen", n2.API, "--raft-addr", n2.Raft, "--gossip-addr", n2.Gossip}
	n2.Start()
	n2.WaitHealthy(30 * time.Second)
	log := n2.Log()
	cfgPath := filepath.Join(n1.Home, "ext-prover.cfg")
	if !strings.Contains(log, "ext-prover children started") || !strings.Contains(log, cfgPath) {
		t.Fatalf("n2 log does not say it started children from %s:\n%s", cfgPath, log)
	}
	if c := strings.Count(log, "response loop start"); c < 2 {
		t.Fatalf("n2 log shows %d children's response loops, want 2:\n%s", c, log)
	}
	if _, err := os.Stat(filepath.Join(n2.Home, "ext-prover.cfg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("n2's home gained an ext-prover.cfg: %v", err)
	}
	// The children serve checks: nothing to check yet, but the method runs.
	n2.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	if out := n2.MustRun("proving", "check", "--miner", "t01000"); !strings.Contains(out, "checked 0 sectors") {
		t.Fatalf("check with no sectors said %q", out)
	}
}

func TestMalformedExtProverCfgRefusesToStart(t *testing.T) {
	n := harness.NewNode(t, "n1")
	writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), twoChildren+"\n[[WdPost]]\nConcurent = 2\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, "--home", n.Home, "daemon", "run", "--bootstrap", "--ext-prover")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("daemon with a malformed ext-prover.cfg kept running:\n%s", out.String())
	}
	if err == nil || !strings.Contains(out.String(), "block 3 of 3") || !strings.Contains(out.String(), "Concurent") {
		t.Fatalf("daemon run: %v; want an error naming block 3 and key Concurent:\n%s", err, out.String())
	}

	// Without --ext-prover the same node starts, and proving check says
	// what is missing.
	n.RunArgs = []string{"--bootstrap"}
	n.Start()
	n.WaitHealthy(30 * time.Second)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	if _, errOut, err := n.Run("proving", "check", "--miner", "t01000"); err == nil || !strings.Contains(errOut, "--ext-prover") {
		t.Fatalf("proving check on a node without children: %v, stderr %q", err, errOut)
	}
}

// badChildren are ext-prover.cfg children that start like provers and then
// misbehave: one never answers, one answers every request with output that
// is no WindowPoSt output.
var badChildren = map[string]string{
	"hung": `echo 'window_post processor ready'; exec cat >/dev/null`,
	"babbling": `echo 'window_post processor ready'
while read -r l; do id=${l#*\"id\":}; id=${id%%,*}; printf '{"id":%s,"err_msg":null,"output":"GPU says hello"}\n' "$id"; done`,
}

// TestProvingCheckSurvivesBadChild runs `vsm proving check` on a node whose
// first child (which gets the first batch) is hung or babbling and whose
// second is a real `vsm wdpost`: the check must answer within seconds, say
// which child failed how, and that the retry on the other child succeeded.
func TestProvingCheckSurvivesBadChild(t *testing.T) {
	tests := []struct{ name, kind, detail string }{
		{"hung", "timeout", "no answer to request 1 after 2s (CheckTimeoutSecs=2 per 256 sectors, 20 sectors); killed, it is restarted"},
		{"babbling", "malformed answer", `the output began "\"GPU says hello\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := harness.NewNode(t, "n1")
			script, _ := json.Marshal(badChildren[tt.name])
			writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), fmt.Sprintf(`[[WdPost]]
Bin = "/bin/sh"
Args = ["-c", %s]
CheckTimeoutSecs = 2
Weight = 100 # every check's batch goes to it first

[[WdPost]]
ReadyTimeoutSecs = 20
`, script))
			n.RunArgs = []string{"--bootstrap", "--ext-prover"}
			n.Start()
			n.WaitHealthy(30 * time.Second)
			loadSectors(t, n)

			start := time.Now()
			out, errOut, err := n.Run("proving", "check", "--miner", "t01000")
			if err != nil {
				t.Fatalf("proving check with one %s child: %v\nstdout: %s\nstderr: %s\nlog:\n%s", tt.name, err, out, errOut, n.Log())
			}
			t.Logf("proving check with a %s child (%s):\n%s", tt.name, time.Since(start).Round(time.Millisecond), out)
			if !strings.Contains(out, "20 good, 0 faulty") || strings.Count(out, fmt.Sprintf("wdpost-0 %s; retry on wdpost-1 succeeded", tt.kind)) != 20 {
				t.Fatalf("want all 20 sectors good, each saying wdpost-0 %s and the retry on wdpost-1 succeeded:\n%s", tt.kind, out)
			}
			if !strings.Contains(out, "prover children that failed during the check:\n  wdpost-0 (pid ") || !strings.Contains(out, tt.kind+": ") || !strings.Contains(out, tt.detail) {
				t.Fatalf("want the failure of wdpost-0 in full (%s: ...%s):\n%s", tt.kind, tt.detail, out)
			}
			// The hung child is restarted: once it is ready again it takes
			// the next check's batch first, and fails it the same way.
			waitFor(t, 30*time.Second, func() bool { return strings.Count(n.Log(), "ext-prover\tready\t") == 3 || tt.name != "hung" })
			var full []struct {
				Child    string `json:"child"`
				Failures []struct {
					Child, Kind string
				} `json:"failures"`
			}
			jout, _, runErr := n.Run("proving", "check", "--miner", "t01000", "--sectors", "1", "--json")
			if err := json.Unmarshal([]byte(jout), &full); err != nil || exitCode(runErr) != 0 || len(full) != 1 || full[0].Child != "wdpost-1" || len(full[0].Failures) != 1 || full[0].Failures[0].Child != "wdpost-0" || full[0].Failures[0].Kind != tt.kind {
				t.Fatalf("--json of sector 1: %v, exit %d: %s", err, exitCode(runErr), jout)
			}
		})
	}
}
