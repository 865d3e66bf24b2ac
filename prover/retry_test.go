package prover_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/prover"
)

// misbehaving is a [[WdPost]] block running this test binary as a child
// that starts fine, then misbehaves as mode says (see TestMain).
func misbehaving(t *testing.T, mode string) prover.ProcessorConfig {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return prover.ProcessorConfig{Bin: exe, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 10, CheckTimeoutSecs: 2,
		Envs: map[string]string{"VSM_TESTCHILD": mode}}
}

// TestCheckSurvivesBadChildren checks 20 real sectors through a
// misbehaving child (wdpost-0, which the first batch goes to) and, where
// there is one, a real `vsm wdpost` child: the check must name the bad
// child and how it failed, answer from the good child, and, with no good
// child, report every sector unchecked instead of failing.
func TestCheckSurvivesBadChildren(t *testing.T) {
	const miner = 1000
	bin := buildVSM(t)
	reps := createSectors(t, t.TempDir(), miner, 20)
	good := prover.ProcessorConfig{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 10}
	tests := []struct {
		name     string
		blocks   []prover.ProcessorConfig
		wantKind []prover.FailureKind
		detail   string
		answered string // "" = nobody: unchecked
	}{
		{"hung child", []prover.ProcessorConfig{misbehaving(t, "silent"), good}, []prover.FailureKind{prover.FailTimeout}, "after 2s (CheckTimeoutSecs=2 per 256 sectors, 20 sectors); killed", "wdpost-1"},
		{"babbling child", []prover.ProcessorConfig{misbehaving(t, "babble"), good}, []prover.FailureKind{prover.FailMalformed}, `the output began "\"GPU says hello\""`, "wdpost-1"},
		{"no good child", []prover.ProcessorConfig{misbehaving(t, "babble"), misbehaving(t, "silent")}, []prover.FailureKind{prover.FailMalformed, prover.FailTimeout}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sup := startSupervisor(t, prover.Config{WdPost: tt.blocks}, prover.Options{Logger: zaptest.NewLogger(t), BackoffMin: 50 * time.Millisecond})
			badPID := sup.Capacity().Children[0].PID

			start := time.Now()
			checks, err := sup.CheckSectors(ctx, prover.CheckRequest{MinerID: miner, ProofType: "StackedDrgWindow2KiBV1_2", Replicas: reps})
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("check took %s; the bad child must cost at most its CheckTimeoutSecs", took)
			}
			for i, c := range checks {
				if c.SectorID != reps[i].SectorID || c.Child != tt.answered || c.Good != (tt.answered != "") || c.Unchecked != (tt.answered == "") {
					t.Fatalf("sector %d: %+v; want answered by %q", reps[i].SectorID, c, tt.answered)
				}
				if len(c.Failures) != len(tt.wantKind) {
					t.Fatalf("sector %d: failures %+v, want kinds %v", c.SectorID, c.Failures, tt.wantKind)
				}
				for j, f := range c.Failures {
					if f.Child != "wdpost-"+string(rune('0'+j)) || f.Kind != tt.wantKind[j] || f.PID == 0 || !strings.Contains(f.Detail, tt.detail) {
						t.Fatalf("sector %d failure %d: %+v; want wdpost-%d %s with %q", c.SectorID, j, f, j, tt.wantKind[j], tt.detail)
					}
				}
			}
			if tt.answered == "" && !strings.Contains(checks[0].Reason, "no other healthy child") {
				t.Errorf("unchecked reason %q does not say why retries stopped", checks[0].Reason)
			}
			if tt.wantKind[0] == prover.FailTimeout {
				// The hung child was killed and is restarted.
				deadline := time.Now().Add(20 * time.Second)
				for c := sup.Capacity().Children[0]; c.PID == badPID || c.State != prover.StateReady; c = sup.Capacity().Children[0] {
					if time.Now().After(deadline) {
						t.Fatalf("hung child not restarted: %+v", c)
					}
					time.Sleep(20 * time.Millisecond)
				}
				if c := sup.Capacity().Children[0]; c.Restarts != 1 || !strings.Contains(c.LastError, "hung") {
					t.Errorf("hung child: %d restarts, last error %q", c.Restarts, c.LastError)
				}
			}
			// Prove retries the same way, and its error names every failure.
			_, err = sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: "StackedDrgWindow2KiBV1_2", Replicas: reps[:2]})
			var re *prover.RetryError
			switch {
			case tt.answered != "" && err != nil:
				t.Errorf("prove with a good child left: %v", err)
			case tt.answered == "" && (!errors.As(err, &re) || re.Failures[0].Child != "wdpost-0"):
				// The hung wdpost-1 may still be restarting: then it is not
				// tried, and the error says there was no other child.
				t.Errorf("prove with no good child: %v; want a RetryError naming wdpost-0", err)
			}
		})
	}
}
