// Package harness starts real vsm processes for tests: it builds the
// binary once, gives each node its own home, and can kill -9 and restart
// them.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness/netns"
	"github.com/vsm-project/vsm/rpc"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/vsm once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vsm-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vsm")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/vsm-project/vsm/cmd/vsm").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// ports hands out loopback ports below the kernel's ephemeral range
// (32768-60999), so a port given to one node is never also picked by the
// kernel for another listener or an outgoing connection, and never twice
// in one test process. The start is spread by pid so test processes that
// run in parallel (go test runs packages at once) rarely meet.
var ports = struct {
	sync.Mutex
	next int
}{}

// FreePort returns a loopback port that is free for both TCP and UDP
// (memberlist uses both) and that this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.next == 0 {
		ports.next = 20000 + (os.Getpid()*211)%12000
	}
	for tries := 0; tries < 2000; tries++ {
		p := ports.next
		ports.next++
		if ports.next >= 32700 {
			ports.next = 20000
		}
		if portFree(p) {
			return p
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

func portFree(p int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// Node is one vsm daemon with its own home.
type Node struct {
	t       testing.TB
	Bin     string
	Home    string
	ID      string
	API     string
	Raft    string
	Gossip  string
	RunArgs []string
	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{}
	// net is set for a node in its own network namespace (NewNodeIn).
	net *netns.Net
	ns  *netns.Host
}

// NewNode inits a home with fresh loopback ports.
func NewNode(t testing.TB, id string, extraInit ...string) *Node {
	t.Helper()
	n := &Node{
		t:      t,
		Bin:    Binary(t),
		Home:   filepath.Join(t.TempDir(), id),
		ID:     id,
		API:    fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		Raft:   fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		Gossip: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
	}
	args := append([]string{"daemon", "init", "--node-id", id, "--listen", n.API, "--raft-addr", n.Raft, "--gossip-addr", n.Gossip}, extraInit...)
	n.MustRun(args...)
	t.Cleanup(n.Kill)
	return n
}

// NewNodeIn inits a node that runs inside network namespace host of nw,
// at the host's address with the default ports.
func NewNodeIn(t testing.TB, id string, nw *netns.Net, host netns.Host, extraInit ...string) *Node {
	t.Helper()
	n := &Node{
		t:      t,
		Bin:    Binary(t),
		Home:   filepath.Join(t.TempDir(), id),
		ID:     id,
		API:    host.Addr() + ":1789",
		Raft:   host.Addr() + ":1790",
		Gossip: host.Addr() + ":1791",
		net:    nw,
		ns:     &host,
	}
	args := append([]string{"daemon", "init", "--node-id", id, "--listen", n.API, "--raft-addr", n.Raft, "--gossip-addr", n.Gossip}, extraInit...)
	n.MustRun(args...)
	t.Cleanup(n.Kill)
	return n
}

// command builds a vsm command, inside the node's namespace if it has one.
func (n *Node) command(ctx context.Context, args ...string) *exec.Cmd {
	if n.ns != nil {
		return n.ns.Command(ctx, n.Bin, args...)
	}
	if ctx == nil {
		return exec.Command(n.Bin, args...)
	}
	return exec.CommandContext(ctx, n.Bin, args...)
}

// httpClient reaches the node's API, through its namespace if it has one.
func (n *Node) httpClient() *http.Client {
	if n.net != nil {
		return &http.Client{Transport: &http.Transport{DialContext: n.net.DialContext}, Timeout: 2 * time.Second}
	}
	return &http.Client{Timeout: 2 * time.Second}
}

// Run runs a CLI command against this node's home and returns stdout,
// stderr and the error.
func (n *Node) Run(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, _, err := n.RunInput(ctx, nil, args...)
	return out, errOut, err
}

// RunInput is Run with stdin (nil: none) and ctx bounding how long it may
// take; it also returns the finished process's state, for its resource
// usage (peak RSS, CPU time).
func (n *Node) RunInput(ctx context.Context, stdin io.Reader, args ...string) (string, string, *os.ProcessState, error) {
	cmd := n.command(ctx, append([]string{"--home", n.Home}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), cmd.ProcessState, err
}

// RunPeak is RunInput that also returns the CLI process's peak resident
// memory in bytes. The peak is read from /proc/PID/status (VmHWM, the
// high-water mark of the process's own memory map) while it runs, because
// the rusage of a process started with Go's os/exec counts the test
// process's peak too: exec keeps the high-water mark of the map it
// replaces, and os/exec starts children sharing the parent's (vfork). A
// peak reached in the last few milliseconds before exit can be missed.
func (n *Node) RunPeak(ctx context.Context, stdin io.Reader, args ...string) (string, string, int64, error) {
	cmd := n.command(ctx, append([]string{"--home", n.Home}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Start(); err != nil {
		return "", "", 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peak int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if hwm, ok := readVmHWM(status); ok {
			peak = max(peak, hwm)
		}
		select {
		case err := <-done:
			return out.String(), errb.String(), peak, err
		case <-tick.C:
		}
	}
}

// readVmHWM reads the VmHWM line of a /proc/PID/status file, in bytes; it
// is absent once the process has exited.
func readVmHWM(path string) (int64, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
				return kb << 10, true
			}
		}
	}
	return 0, false
}

// MustRun is Run that fails the test on error.
func (n *Node) MustRun(args ...string) string {
	n.t.Helper()
	out, errOut, err := n.Run(args...)
	if err != nil {
		n.t.Fatalf("vsm %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// Start launches `daemon run` with RunArgs; its log goes to <home>/daemon.log.
func (n *Node) Start() {
	n.t.Helper()
	f, err := os.OpenFile(filepath.Join(n.Home, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	args := append([]string{"--home", n.Home, "daemon", "run"}, n.RunArgs...)
	cmd := n.command(nil, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.cmd, n.logFile, n.exited = cmd, f, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, n.exited)
}

// WaitHealthy waits until /healthz answers 200.
func (n *Node) WaitHealthy(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := n.httpClient().Get("http://" + n.API + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.exited:
			n.t.Fatalf("node %s exited while starting; log:\n%s", n.ID, n.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.t.Fatalf("node %s not healthy after %v; log:\n%s", n.ID, timeout, n.Log())
}

// Kill sends SIGKILL (kill -9) and waits for the process to go.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
	n.logFile.Close()
	n.cmd = nil
}

// Stop sends SIGTERM and waits up to timeout for a clean exit.
func (n *Node) Stop(timeout time.Duration) error {
	if n.cmd == nil {
		return nil
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		n.logFile.Close()
		n.cmd = nil
		return nil
	case <-time.After(timeout):
		n.Kill()
		return fmt.Errorf("node %s did not stop within %v", n.ID, timeout)
	}
}

// Log returns the daemon's log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Home, "daemon.log"))
	return string(b)
}

// Token reads the admin token the daemon wrote.
func (n *Node) Token() string {
	b, _ := os.ReadFile(filepath.Join(n.Home, "token"))
	return strings.TrimSpace(string(b))
}

// Client returns an RPC client with the given token.
func (n *Node) Client(token string) *rpc.Client {
	c := rpc.NewClient(n.API, token)
	if n.net != nil {
		c.WithDialer(n.net.DialContext)
	}
	return c
}

// WaitExit waits up to timeout for the daemon to exit by itself (a start
// that must be refused) and reports whether it did.
func (n *Node) WaitExit(timeout time.Duration) bool {
	if n.cmd == nil {
		return true
	}
	select {
	case <-n.exited:
		n.logFile.Close()
		n.cmd = nil
		return true
	case <-time.After(timeout):
		return false
	}
}

// Pid is the daemon's process id (0 when it is not running).
func (n *Node) Pid() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
