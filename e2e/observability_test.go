package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vsm-project/vsm/internal/harness"
)

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// metricValue sums a family's samples whose labels include match.
func metricValue(t *testing.T, n *harness.Node, family string, match map[string]string) (float64, bool) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(httpGet(t, "http://"+n.API+"/metrics")))
	if err != nil {
		t.Fatalf("/metrics of %s is not valid Prometheus text: %v", n.ID, err)
	}
	f, ok := fams[family]
	if !ok {
		return 0, false
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		matched := true
		for k, v := range match {
			matched = matched && labels[k] == v
		}
		if !matched {
			continue
		}
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, true
}

// TestMetricsAndStatusPage runs a devnet and a 3-node poster cluster until
// deadlines are proven, then checks every node's /metrics with the
// Prometheus text parser and the status page's content, and, where
// Chromium is installed, renders the page headless and keeps a screenshot.
func TestMetricsAndStatusPage(t *testing.T) {
	// 96 sectors per miner: a partition in each of the 48 deadlines, so
	// every window needs a real proof and a message.
	pc := startPosterCluster(t, 2, 96, 100, 100*time.Millisecond, "observability-e2e")
	nodes := pc.nodes
	// A deadline counts as proven once its message's receipt has the
	// configured confidence, a few epochs after the message was sent.
	waitFor(t, 90*time.Second, func() bool {
		messages, proven := 0.0, 0.0
		for _, n := range nodes {
			v, _ := metricValue(t, n, "vsm_post_messages_total", nil)
			messages += v
			p, _ := metricValue(t, n, "vsm_deadlines_total", map[string]string{"outcome": "proven"})
			proven += p
		}
		return messages >= 2 && proven >= 2
	})

	for _, n := range nodes {
		for _, c := range []struct {
			family string
			match  map[string]string
			min    float64
		}{
			{"vsm_raft_state", nil, 1},
			{"vsm_raft_term", nil, 1},
			{"vsm_raft_commit_index", nil, 1},
			{"vsm_raft_applied_index", nil, 1},
			{"vsm_raft_last_contact_seconds", nil, 0},
			{"vsm_gossip_members", map[string]string{"state": "alive"}, 3},
			{"vsm_fsm_items", map[string]string{"kind": "sectors"}, 16},
			{"vsm_fsm_items", map[string]string{"kind": "miners"}, 2},
			{"vsm_prover_child_up", nil, 2},
			{"vsm_prover_child_busy_slots", nil, 0},
		} {
			v, ok := metricValue(t, n, c.family, c.match)
			if !ok || v < c.min {
				t.Errorf("%s: %s%v = %v (present %v), want at least %v", n.ID, c.family, c.match, v, ok, c.min)
			}
		}
	}
	// Every proof was verified by a `vsm wdpost` child before it was
	// sent: none went unverified, none failed.
	for _, n := range nodes {
		for _, family := range []string{"vsm_post_proofs_unverified_total", "vsm_post_proofs_invalid_total"} {
			if v, ok := metricValue(t, n, family, nil); !ok || v != 0 {
				t.Errorf("%s: %s = %v (present %v), want 0", n.ID, family, v, ok)
			}
		}
	}
	if _, ok := metricValue(t, nodes[0], "vsm_rpc_request_seconds", nil); !ok {
		t.Error("n1 served the CLI's requests but has no vsm_rpc_request_seconds")
	}
	proven, submitted, partitions := 0.0, 0.0, 0.0
	for _, n := range nodes {
		v, _ := metricValue(t, n, "vsm_deadlines_total", map[string]string{"outcome": "proven"})
		proven += v
		s, _ := metricValue(t, n, "vsm_deadline_submit_seconds_before_close", nil)
		submitted += s
		if p, ok := metricValue(t, n, "vsm_prover_partition_seconds", nil); ok {
			partitions += p
		}
	}
	if partitions < 2 {
		t.Errorf("partition proof times observed across the cluster: %v, want at least 2", partitions)
	}
	if proven < 2 || submitted < 2 {
		t.Errorf("deadline metrics across the cluster: proven %v, submissions timed %v", proven, submitted)
	}

	// The leader's plan: its balance and unplaced deadlines as metrics
	// (only the leader plans; the others' gauges are 0).
	lower, unplacedSeen := 0.0, false
	for _, n := range nodes {
		v, _ := metricValue(t, n, "vsm_scheduler_lower_bound", nil)
		lower += v
		_, ok := metricValue(t, n, "vsm_scheduler_unplaced_deadlines", map[string]string{"reason": "no-capacity"})
		unplacedSeen = unplacedSeen || ok
	}
	if lower <= 0 || !unplacedSeen {
		t.Errorf("scheduler metrics: lower bound %v, unplaced gauge present %v", lower, unplacedSeen)
	}
	checkScheduleLoads(t, nodes[0].MustRun("cluster", "schedule"))

	url := "http://" + nodes[0].API + "/"
	page := httpGet(t, url)
	for _, want := range []string{"n1", "n2", "n3", `class="state-alive">alive`, `id="timeline"`, `data-node="n2"`, "t01000 deadline", `class="o-proven">proven`, `id="balance"`} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	screenshotStatusPage(t, url)
}

// checkScheduleLoads: `vsm cluster schedule` states the lower bound and
// each node's load in GPU time, not zero for nodes that own partitions (the
// devnet's 2 KiB partitions take about a millisecond of GPU time, which the
// old "%.2f" GPU-hours columns showed as 0.00).
func checkScheduleLoads(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, "lower bound ") || strings.Contains(out, "lower bound 0%") {
		t.Errorf("cluster schedule does not state a lower bound:\n%s", out)
	}
	loaded := 0
	inLoads := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "NODE" {
			inLoads = true
			continue
		}
		if !inLoads || len(f) < 9 || f[4] == "0" {
			continue
		}
		// PARTITIONS > 0: GPU TIME/24H and PEAK SHARE must not be zero.
		gpuTime, share := f[len(f)-3], f[len(f)-1]
		if gpuTime == "0" || share == "0%" {
			t.Errorf("node row with partitions shows no load: %q", line)
		}
		loaded++
	}
	if loaded == 0 {
		t.Errorf("no node row with partitions in:\n%s", out)
	}
}

// screenshotStatusPage renders the page in headless Chromium (installed by
// .ci/run from Debian's packages) and keeps the PNG in VSM_ARTIFACTS (or
// the test's temp dir).
func screenshotStatusPage(t *testing.T, url string) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Logf("chromium not installed; the status page was checked as HTML only (apt-get install chromium)")
		return
	}
	dir := os.Getenv("VSM_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-page.png")
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir()}
	dom, err := exec.Command(chromium, append(base, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, want := range []string{`id="members"`, `class="slot"`, "n3"} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	out, err := exec.Command(chromium, append(base, "--window-size=1400,900", "--screenshot="+shot, url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v %s", err, out)
	}
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (%v bytes)", shot, err, fi)
	}
	t.Logf("status page screenshot: %s (%d bytes)", shot, fi.Size())
}
