package devnet_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fullnode"
)

// TestDevnetProcess runs `vsm devnet run` as a real process, talks to it
// with the client, stops it with SIGTERM and reads the report from disk.
func TestDevnetProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the vsm binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vsm")
	build := exec.Command("go", "build", "-o", bin, "github.com/vsm-project/vsm/cmd/vsm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	spec := filepath.Join(dir, "spec.toml")
	if err := os.WriteFile(spec, []byte(`
Seed = "process"
[Policy]
PeriodDeadlines = 4
ChallengeWindow = 5
ChallengeLookback = 2
FaultDeclarationCutoff = 3
[[Miners]]
ID = 1000
Sectors = 4
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dn := filepath.Join(dir, "dn")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--log-level", "warn", "devnet", "run", "--dir", dn, "--spec", spec, "--listen", "127.0.0.1:0", "--epoch", "10ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading api info: %v", err)
	}
	info, ok := strings.CutPrefix(strings.TrimSpace(line), "FULLNODE_API_INFO=")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	saved, _ := os.ReadFile(filepath.Join(dn, "api-info"))
	if strings.TrimSpace(string(saved)) != info {
		t.Fatalf("api-info file %q != printed %q", saved, info)
	}
	c, err := fullnode.Dial(info, nil)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := c.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	h2, err := c.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Height <= h1.Height {
		t.Fatalf("head did not advance: %d then %d", h1.Height, h2.Height)
	}
	out, err := exec.CommandContext(ctx, bin, "devnet", "report", "--dir", dn).Output()
	if err != nil {
		t.Fatalf("report from the running devnet: %v", err)
	}
	if !strings.Contains(string(out), "deadlines proven 0, faulty ") {
		t.Fatalf("live report %q", out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("devnet exit: %v", err)
	}
	out, err = exec.CommandContext(ctx, bin, "devnet", "report", "--dir", dn, "--api-info", "").CombinedOutput()
	if err != nil {
		t.Fatalf("report from disk: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "deadlines proven 0, faulty ") || !strings.Contains(last, "missed ") {
		t.Fatalf("report last line %q", last)
	}
}
