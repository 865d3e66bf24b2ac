package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
)

// putFunc acknowledges one single-record write (key is unique per run).
type putFunc func(ctx context.Context, key uint64) error

// writeFigures are one round of the single-record write figures issue 13
// compares with etcd.
type writeFigures struct {
	seqRate, seqP50ms, concRate float64
}

const (
	seqPuts     = 1000
	concClients = 64
)

// concPuts is 100k in make bench; VSM_BENCH_CONC_PUTS shortens a trial run.
func concPuts() int {
	if n, err := strconv.Atoi(os.Getenv("VSM_BENCH_CONC_PUTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// measureWrites runs the two client shapes against put: 1000 sequential
// acknowledged puts, then concPuts puts from 64 concurrent clients.
func measureWrites(b *testing.B, put putFunc, base uint64) writeFigures {
	ctx := context.Background()
	lat := make([]time.Duration, 0, seqPuts)
	start := time.Now()
	for i := uint64(0); i < seqPuts; i++ {
		t0 := time.Now()
		if err := put(ctx, base+i); err != nil {
			b.Fatalf("sequential put %d: %v", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	f := writeFigures{seqRate: seqPuts / time.Since(start).Seconds(), seqP50ms: float64(percentile(lat, 0.5).Microseconds()) / 1000}
	total := concPuts()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start = time.Now()
	for c := 0; c < concClients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(total); i = next.Add(1) {
				if err := put(ctx, base+seqPuts+uint64(i)); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("concurrent put: %v", err)
	}
	f.concRate = float64(total) / time.Since(start).Seconds()
	return f
}

// vsmPut writes one sector location through the leader's JSON-RPC API,
// the path `vsm sector put` takes.
func vsmPut(b *testing.B) (putFunc, func()) {
	nodes := startCluster(b, 3)
	leader, _ := seedWriteTarget(b, nodes)
	cl := leader.Client(leader.Token())
	put := func(ctx context.Context, key uint64) error {
		loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: key}, Sealed: "s", Cache: "s"}
		return cl.Call(ctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc})
	}
	return put, func() {
		for _, n := range nodes {
			n.Kill()
		}
	}
}

// etcdPut writes one key through etcd's v3 JSON gateway on its leader, the
// same client shape as vsmPut (one HTTP request per acknowledged write).
func etcdPut(b *testing.B, endpoints []string) putFunc {
	// The same connection reuse as rpc.Client's, so neither side pays for
	// dialing.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: time.Minute}}
	url := etcdLeader(b, hc, endpoints) + "/v3/kv/put"
	value := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("v"), 100))
	return func(ctx context.Context, key uint64) error {
		body := fmt.Sprintf(`{"key":%q,"value":%q}`, base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("sector/1000/%d", key))), value)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd put: HTTP %d: %s", resp.StatusCode, raw)
		}
		return nil
	}
}

// etcdLeader returns the endpoint whose member leads.
func etcdLeader(b *testing.B, hc *http.Client, endpoints []string) string {
	for _, ep := range endpoints {
		resp, err := hc.Post(ep+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
		if err != nil {
			b.Fatalf("etcd status at %s: %v", ep, err)
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			b.Fatalf("etcd status at %s: %v", ep, err)
		}
		if st.Leader != "" && st.Leader == st.Header.MemberID {
			return ep
		}
	}
	b.Fatalf("no etcd leader among %v", endpoints)
	return ""
}

// spread reports min, median and max of one figure over the rounds.
func spread(b *testing.B, name string, rounds []writeFigures, pick func(writeFigures) float64) float64 {
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = pick(r)
	}
	slices.Sort(v)
	med := v[len(v)/2]
	b.ReportMetric(v[0], name+"-min")
	b.ReportMetric(med, name+"-med")
	b.ReportMetric(v[len(v)-1], name+"-max")
	return med
}

// writeRounds is how many times each system is measured (3 unless
// VSM_BENCH_ROUNDS says otherwise).
func writeRounds() int {
	if n, err := strconv.Atoi(os.Getenv("VSM_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// BenchmarkWritePath measures single-record writes on a 3-node cluster:
// 1000 sequential acknowledged puts (rate and p50 latency) and puts from
// 64 concurrent clients, each over several rounds (min/median/max). With
// VSM_ETCD_ENDPOINTS (comma-separated client URLs of a 3-node etcd, see
// scripts/etcd-compare.sh) it measures etcd the same way in the same run,
// rounds interleaved, and reports vsm/etcd ratios of the medians.
func BenchmarkWritePath(b *testing.B) {
	var endpoints []string
	if e := os.Getenv("VSM_ETCD_ENDPOINTS"); e != "" {
		endpoints = strings.Split(e, ",")
	}
	for i := 0; i < b.N; i++ {
		var vsmR, etcdR []writeFigures
		for r := 0; r < writeRounds(); r++ {
			put, stop := vsmPut(b)
			vsmR = append(vsmR, measureWrites(b, put, 0))
			stop()
			if endpoints != nil {
				etcdR = append(etcdR, measureWrites(b, etcdPut(b, endpoints), uint64(r)<<40))
			}
		}
		seq := spread(b, "vsm-seq-put/s", vsmR, func(f writeFigures) float64 { return f.seqRate })
		spread(b, "vsm-seq-p50-ms", vsmR, func(f writeFigures) float64 { return f.seqP50ms })
		conc := spread(b, "vsm-64c-put/s", vsmR, func(f writeFigures) float64 { return f.concRate })
		if endpoints == nil {
			continue
		}
		eseq := spread(b, "etcd-seq-put/s", etcdR, func(f writeFigures) float64 { return f.seqRate })
		spread(b, "etcd-seq-p50-ms", etcdR, func(f writeFigures) float64 { return f.seqP50ms })
		econc := spread(b, "etcd-64c-put/s", etcdR, func(f writeFigures) float64 { return f.concRate })
		b.ReportMetric(seq/eseq, "seq-vsm/etcd")
		b.ReportMetric(conc/econc, "64c-vsm/etcd")
	}
}
