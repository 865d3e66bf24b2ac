package prover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

// testSupervisor starts a supervisor whose children are this test binary in
// test-child mode (see TestMain).
func testSupervisor(t *testing.T, blocks []ProcessorConfig, opts Options) *Supervisor {
	t.Helper()
	s, err := newTestSupervisor(t, blocks, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newTestSupervisor(t *testing.T, blocks []ProcessorConfig, opts Options) (*Supervisor, error) {
	for i := range blocks {
		b := &blocks[i]
		if b.Envs == nil {
			b.Envs = map[string]string{}
		}
		if _, ok := b.Envs["VSM_TESTCHILD"]; !ok {
			b.Envs["VSM_TESTCHILD"] = "ok"
		}
		b.Envs["VSM_TESTCHILD_NAME"] = fmt.Sprintf("c%d", i)
		b.Concurrent = max(b.Concurrent, 1)
		b.Weight = max(b.Weight, 1)
		b.ReadyTimeoutSecs = max(b.ReadyTimeoutSecs, 5)
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	if opts.SelfExe == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		opts.SelfExe = exe
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin = 20 * time.Millisecond
	}
	return NewSupervisor(Config{WdPost: blocks}, opts)
}

func tcall(ctx context.Context, s *Supervisor, task testTask) (testOutput, error) {
	raw, _ := json.Marshal(task)
	out, err := s.Call(ctx, raw)
	if err != nil {
		return testOutput{}, err
	}
	var o testOutput
	if err := json.Unmarshal(out, &o); err != nil {
		return testOutput{}, err
	}
	return o, nil
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or fails the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSupervisorOutOfOrder(t *testing.T) {
	s := testSupervisor(t, []ProcessorConfig{{Concurrent: 4}}, Options{})
	type result struct {
		val string
		out testOutput
		err error
		at  time.Time
	}
	res := make(chan result, 2)
	for _, task := range []testTask{{Op: "sleep", MS: 300, Val: "slow"}, {Op: "echo", Val: "fast"}} {
		go func() {
			o, err := tcall(ctxT(t, 5*time.Second), s, task)
			res <- result{task.Val, o, err, time.Now()}
		}()
		time.Sleep(20 * time.Millisecond) // send slow first
	}
	first, second := <-res, <-res
	for _, r := range []result{first, second} {
		if r.err != nil || r.out.Val != r.val {
			t.Fatalf("request %q got %+v, %v", r.val, r.out, r.err)
		}
	}
	if first.val != "fast" {
		t.Errorf("the fast request should have been answered first (out of order), got %q first", first.val)
	}
}

func TestSupervisorChildMisbehaves(t *testing.T) {
	tests := []struct {
		name      string
		task      testTask
		timeout   time.Duration
		wantErr   string
		wantLost  bool
		restarted bool
		protoErrs uint64
	}{
		{"crash", testTask{Op: "crash"}, 5 * time.Second, "exited unexpectedly: exit status 3", true, true, 0},
		{"hang", testTask{Op: "hang"}, 200 * time.Millisecond, "given up", false, true, 0},
		{"garbage line then answer", testTask{Op: "garbage", Val: "x"}, 5 * time.Second, "", false, false, 1},
		{"response without output", testTask{Op: "badresp", Val: "1"}, 5 * time.Second, "neither err_msg nor output", false, false, 2},
		{"error answer", testTask{Op: "err", Val: "disk on fire"}, 5 * time.Second, "task failed: disk on fire", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSupervisor(t, []ProcessorConfig{{Concurrent: 2}}, Options{HangGrace: 300 * time.Millisecond})
			pid := s.Capacity().Children[0].PID
			out, err := tcall(ctxT(t, tt.timeout), s, tt.task)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			case tt.wantErr == "" && out.Val != tt.task.Val:
				t.Fatalf("output %+v", out)
			}
			if errors.Is(err, ErrChildLost) != tt.wantLost {
				t.Errorf("errors.Is(err, ErrChildLost) = %v, want %v (err %v)", !tt.wantLost, tt.wantLost, err)
			}
			if tt.restarted {
				waitFor(t, "a restarted child", func() bool {
					c := s.Capacity().Children[0]
					return c.State == StateReady && c.PID != pid && c.Restarts == 1
				})
				if tt.name == "hang" && !strings.Contains(s.Capacity().Children[0].LastError, "hung") {
					t.Errorf("last error %q does not say the child hung", s.Capacity().Children[0].LastError)
				}
			}
			// Whatever happened, the supervisor still serves.
			if o, err := tcall(ctxT(t, 5*time.Second), s, testTask{Op: "echo", Val: "after"}); err != nil || o.Val != "after" {
				t.Fatalf("request after %s: %+v, %v", tt.name, o, err)
			}
			c := s.Capacity().Children[0]
			if c.ProtocolErrors != tt.protoErrs {
				t.Errorf("protocol errors = %d, want %d", c.ProtocolErrors, tt.protoErrs)
			}
			if !tt.restarted && c.PID != pid {
				t.Errorf("child was restarted (pid %d -> %d) but should not have been", pid, c.PID)
			}
		})
	}
}

func TestSupervisorStartFailures(t *testing.T) {
	tests := []struct {
		mode    string
		wantErr string
	}{
		{"badready", `first line was "hello, I am not a prover"`},
		{"noready", "did not print the ready line"},
		{"exit", "cannot open GPU: no device"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			s, err := newTestSupervisor(t, []ProcessorConfig{{ReadyTimeoutSecs: 1, Envs: map[string]string{"VSM_TESTCHILD": tt.mode}}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Start(ctxT(t, 10*time.Second))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "wdpost-0") {
				t.Fatalf("Start error = %v, want it to name the child and contain %q", err, tt.wantErr)
			}
		})
	}
	// One bad child among good ones: Start succeeds, the bad one retries.
	s := testSupervisor(t, []ProcessorConfig{{}, {Envs: map[string]string{"VSM_TESTCHILD": "exit"}}}, Options{})
	if o, err := tcall(ctxT(t, 5*time.Second), s, testTask{Op: "echo", Val: "v"}); err != nil || o.Name != "c0" {
		t.Fatalf("call with one bad child: %+v %v", o, err)
	}
	bad := s.Capacity().Children[1]
	if bad.State == StateReady || !strings.Contains(bad.LastError, "cannot open GPU") {
		t.Errorf("bad child: state %s, last error %q; want it not ready, with the stderr reason", bad.State, bad.LastError)
	}
}

func TestSupervisorWeights(t *testing.T) {
	s := testSupervisor(t, []ProcessorConfig{{Weight: 1}, {Weight: 2}, {Weight: 3}}, Options{})
	counts := map[string]int{}
	for i := range 60 {
		o, err := tcall(ctxT(t, 5*time.Second), s, testTask{Op: "echo", Val: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		counts[o.Name]++
	}
	want := map[string]int{"c0": 10, "c1": 20, "c2": 30}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("child %s got %d requests, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
}

func TestSupervisorWaitsForSlot(t *testing.T) {
	s := testSupervisor(t, []ProcessorConfig{{Concurrent: 1}}, Options{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := tcall(ctxT(t, 5*time.Second), s, testTask{Op: "sleep", MS: 400}); err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the slot to be taken", func() bool { return s.Capacity().FreeSlots == 0 })
	_, err := tcall(ctxT(t, 100*time.Millisecond), s, testTask{Op: "echo"})
	if !errors.Is(err, ErrNoSlot) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wdpost-0 ready 1/1 busy") {
		t.Fatalf("short deadline while busy: %v, want ErrNoSlot with the children's state", err)
	}
	start := time.Now()
	if o, err := tcall(ctxT(t, 5*time.Second), s, testTask{Op: "echo", Val: "waited"}); err != nil || o.Val != "waited" {
		t.Fatalf("long deadline: %+v, %v", o, err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Error("second request did not wait for the slot")
	}
	wg.Wait()
}

func TestSupervisorCancelKeepsSlotUntilAnswer(t *testing.T) {
	s := testSupervisor(t, []ProcessorConfig{{Concurrent: 1}}, Options{HangGrace: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := tcall(ctx, s, testTask{Op: "sleep", MS: 400})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 300*time.Millisecond {
		t.Fatalf("cancel: err %v after %s", err, time.Since(start))
	}
	if c := s.Capacity().Children[0]; c.Busy != 1 {
		t.Fatalf("busy = %d right after cancel, want 1 (the child is still working)", c.Busy)
	}
	waitFor(t, "the late answer to free the slot", func() bool { return s.Capacity().Children[0].Busy == 0 })
	if c := s.Capacity().Children[0]; c.Restarts != 0 {
		t.Errorf("child restarted %d times; a late answer within HangGrace must not restart it", c.Restarts)
	}
}

func TestSupervisorCloseKillsStuckChildren(t *testing.T) {
	s, err := newTestSupervisor(t, []ProcessorConfig{{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := tcall(ctxT(t, 10*time.Second), s, testTask{Op: "hang"})
		errc <- err
	}()
	waitFor(t, "the request to be in flight", func() bool { return s.Capacity().FreeSlots == 0 })
	if err := s.Close(ctxT(t, 300*time.Millisecond)); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Close error = %v, want it to say it killed children", err)
	}
	if err := <-errc; !errors.Is(err, ErrChildLost) {
		t.Errorf("in-flight request error = %v, want ErrChildLost", err)
	}
	if _, err := tcall(ctxT(t, time.Second), s, testTask{Op: "echo"}); !errors.Is(err, ErrChildLost) {
		t.Errorf("request after Close: %v, want ErrChildLost", err)
	}
	if st := s.Capacity().Children[0].State; st != StateStopped {
		t.Errorf("state after Close = %s", st)
	}
}

func TestSupervisorMetrics(t *testing.T) {
	s := testSupervisor(t, []ProcessorConfig{{Concurrent: 3}}, Options{})
	if _, err := tcall(ctxT(t, 5*time.Second), s, testTask{Op: "echo"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()] = v
		}
	}
	want := map[string]float64{"vsm_prover_child_up": 1, "vsm_prover_child_slots": 3, "vsm_prover_child_busy_slots": 0, "vsm_prover_child_requests_ok_total": 0}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func TestNewSupervisorErrors(t *testing.T) {
	if _, err := NewSupervisor(Config{}, Options{}); err == nil {
		t.Error("empty config accepted")
	}
	_, err := NewSupervisor(Config{WdPost: []ProcessorConfig{{Bin: "no-such-prover-binary-xyz", Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 1}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "block 1 of 1: key Bin") {
		t.Errorf("missing Bin: %v", err)
	}
}

func TestChildLimit(t *testing.T) {
	c := &child{cfg: ProcessorConfig{CheckTimeoutSecs: DefaultCheckTimeoutSecs, ProveTimeoutSecs: DefaultProveTimeoutSecs}}
	tests := []struct {
		w    work
		want time.Duration
	}{
		{work{check: true, sectors: 0}, 2 * time.Minute},
		{work{check: true, sectors: 256}, 2 * time.Minute},
		{work{check: true, sectors: 257}, 4 * time.Minute},
		{work{check: true, sectors: 2349}, 20 * time.Minute}, // a 32 GiB partition: Lotus's PartitionCheckTimeout
		{work{sectors: 2349 * 3}, 30 * time.Minute},
	}
	for _, tt := range tests {
		if got := c.limit(tt.w); got.d != tt.want {
			t.Errorf("limit(%+v) = %s (%s), want %s", tt.w, got.d, got.why, tt.want)
		}
	}
}

// TestProveElsewhere: a proof asked for again elsewhere (after it failed
// verification) goes to a child other than the one named, and to that
// same child when it is the only one.
func TestProveElsewhere(t *testing.T) {
	const miner = 1000
	s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: miner, Number: 1, Size: sectorfile.Size2KiB, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	task := WindowPoStTask{MinerID: miner, ProofType: "StackedDrgWindow2KiBV1_2", Seed: Bytes32{1},
		Replicas: []Replica{{SectorID: s.Number, CommR: Bytes32(s.CommR), CacheDir: s.Paths.Cache, SealedFile: s.Paths.Sealed}}}
	post := func() ProcessorConfig { return ProcessorConfig{Envs: map[string]string{"VSM_TESTCHILD": "post"}} }
	tests := []struct {
		name     string
		children int
		other    bool // the second answer must come from another child
	}{
		{"another child when there is one", 2, true},
		{"the same child when it is the only one", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The first child weighs 10: left to the weights, most picks
			// in a row would go to it.
			var blocks []ProcessorConfig
			for i := range tt.children {
				b := post()
				if i == 0 {
					b.Weight = 10
				}
				blocks = append(blocks, b)
			}
			sup := testSupervisor(t, blocks, Options{})
			ctx := ctxT(t, 20*time.Second)
			for range 4 { // whichever child answered first, never it again
				out, tr, err := sup.ProveTraced(ctx, task)
				if err != nil || len(out.Proofs) != 1 {
					t.Fatalf("prove: %+v, %v", out, err)
				}
				again, tr2, err := sup.ProveElsewhere(ctx, task, tr.Child)
				if err != nil || len(again.Proofs) != 1 {
					t.Fatalf("prove elsewhere: %+v, %v", again, err)
				}
				if (tr2.Child != tr.Child) != tt.other {
					t.Fatalf("first proof from %s, second from %s; want another child: %v", tr.Child, tr2.Child, tt.other)
				}
			}
		})
	}
}
