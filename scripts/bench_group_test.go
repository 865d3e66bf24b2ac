// Package scripts holds the repository's shell helpers; its test runs them
// as make runs them.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// benchGroups lists the group names of the Makefile's bench target, in
// order.
func benchGroups(t *testing.T) []string {
	t.Helper()
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\t@\$\(BENCH_GROUP\) "([^"]+)" --`).FindAllStringSubmatch(string(mk), -1) {
		names = append(names, m[1])
	}
	if len(names) < 2 {
		t.Fatalf("found %d bench groups in the Makefile, want several", len(names))
	}
	return names
}

// TestMakeBenchRunsEveryGroup runs `make bench` with GO and MAKE replaced by
// a fake tool that fails when its arguments match FAIL: every group must
// still run, the summary must name exactly the failed groups, and make must
// fail only if one did. A bench line added without scripts/bench-group.sh
// stops make at the first failure and fails the all-fail case.
func TestMakeBenchRunsEveryGroup(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	groups := benchGroups(t)
	fake := filepath.Join(t.TempDir(), "fake-go")
	script := "#!/bin/sh\necho \"fake-go: $*\"\ncase \"$*\" in *$FAIL*) exit 3;; esac\nexit 0\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, fail string
		wantFailed []string
	}{
		{"one group fails", "SnapshotRestore1M", []string{"fsm snapshot/memory"}},
		{"every group fails", "", groups},
		{"none fails", "no-such-argument", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures := filepath.Join(t.TempDir(), "failures")
			cmd := exec.Command("make", "--no-print-directory", "-C", "..", "bench", "GO="+fake, "MAKE="+fake, "BENCH_FAILURES="+failures)
			cmd.Env = append(os.Environ(), "FAIL="+tt.fail)
			out, err := cmd.CombinedOutput()
			if got := strings.Count(string(out), "fake-go: "); got != len(groups) {
				t.Fatalf("%d of %d groups ran:\n%s", got, len(groups), out)
			}
			if (err != nil) != (len(tt.wantFailed) > 0) {
				t.Fatalf("make bench: %v, want failure %v:\n%s", err, len(tt.wantFailed) > 0, out)
			}
			summary := string(out)[strings.LastIndex(string(out), "== bench:"):]
			for _, g := range groups {
				want := slices.Contains(tt.wantFailed, g)
				if got := strings.Contains(summary, "- "+g+" (exit 3)"); got != want {
					t.Errorf("summary lists %q as failed: %v, want %v:\n%s", g, got, want, summary)
				}
			}
			if len(tt.wantFailed) == 0 && !strings.Contains(summary, "every group ran") {
				t.Errorf("summary %q", summary)
			}
		})
	}
}
