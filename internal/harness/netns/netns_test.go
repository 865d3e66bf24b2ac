//go:build linux

package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv re-execs the test binary as a small program (the usual TestMain
// pattern), so the tests need nothing but the binary itself inside the
// namespaces.
const helperEnv = "VSM_NETNS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "listen":
		helperListen(os.Getenv("VSM_NETNS_ADDR"))
	case "sleep":
		time.Sleep(time.Hour)
	}
	os.Exit(2)
}

// helperListen starts a grandchild (to show process-group kills reach
// descendants too), then serves "hello" on addr until killed. It prints
// "ready <grandchild pid>" once listening.
func helperListen(addr string) {
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), helperEnv+"=sleep")
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", child.Process.Pid)
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		fmt.Fprintln(c, "hello")
		c.Close()
	}
}

func newNet(t *testing.T, n int) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("network namespaces unavailable, partition tests skipped: %v", err)
	}
	nw, err := New(t, n)
	if err != nil {
		t.Fatal(err)
	}
	return nw
}

// hello dials addr with dial and expects the "hello" greeting.
func hello(dial func(context.Context, string, string) (net.Conn, error), addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "hello\n" {
		return fmt.Errorf("got %q", line)
	}
	return nil
}

// eventually retries f for up to 5 s: after a heal, neighbour entries that
// failed during the partition need a fresh ARP round.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// serve runs an in-process "hello" server inside host h.
func serve(t *testing.T, h Host, port int) string {
	t.Helper()
	addr := net.JoinHostPort(h.Addr(), strconv.Itoa(port))
	l, err := h.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "hello")
			c.Close()
		}
	}()
	return addr
}

func nsPids(t *testing.T, ns string) []int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v: %s", ns, err, out)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	return pids
}

func TestPartitionHealAndProcessKill(t *testing.T) {
	nw := newNet(t, 3)
	h0, h1, h2 := nw.Host(0), nw.Host(1), nw.Host(2)
	if h0.Addr() != "198.18.0.10" || h2.Addr() != "198.18.0.12" {
		t.Fatalf("addresses %s, %s", h0.Addr(), h2.Addr())
	}

	// A real process in host 0. It can bind 198.18.0.10 only because it
	// runs inside host 0's namespace.
	target := net.JoinHostPort(h0.Addr(), "7070")
	cmd := h0.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=listen", "VSM_NETNS_ADDR="+target)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	var ready string
	readyc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		readyc <- line
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case ready = <-readyc:
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not become ready")
	}
	var grandchild int
	if _, err := fmt.Sscanf(ready, "ready %d", &grandchild); err != nil {
		t.Fatalf("helper said %q", ready)
	}

	// Host 2 also gets a server, to show the rest still talk to each other
	// while host 0 is cut off.
	addr2 := serve(t, h2, 7070)

	if err := hello(h1.DialContext, target, 2*time.Second); err != nil {
		t.Fatalf("host 1 -> host 0 before partition: %v", err)
	}

	if err := nw.Partition(0); err != nil {
		t.Fatal(err)
	}
	if err := hello(h1.DialContext, target, time.Second); err == nil {
		t.Fatal("host 1 reached host 0 through a partition")
	}
	if err := hello(h1.DialContext, addr2, 2*time.Second); err != nil {
		t.Fatalf("host 1 -> host 2 during host 0's partition: %v", err)
	}
	// The test itself still reaches the partitioned host.
	if err := hello(nw.DialContext, target, 2*time.Second); err != nil {
		t.Fatalf("god's-eye dial to partitioned host 0: %v", err)
	}

	if err := nw.Heal(0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host 1 -> host 0 after heal", func() error { return hello(h1.DialContext, target, time.Second) })

	// Killing the process group reaches the real program (ip execs in
	// place, so the pid is the program's) and its descendants, and leaves
	// nothing behind in the namespace.
	pids := nsPids(t, h0.Namespace())
	if !slices.Contains(pids, cmd.Process.Pid) || !slices.Contains(pids, grandchild) {
		t.Fatalf("namespace %s holds %v, want helper %d and its child %d", h0.Namespace(), pids, cmd.Process.Pid, grandchild)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); err != nil || strings.HasSuffix(exe, "/ip") {
		t.Fatalf("pid %d is %q (%v), want the test binary, not ip", cmd.Process.Pid, exe, err)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("helper exit: %v, want killed by SIGKILL", err)
		}
		exited <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("helper survived kill of its process group")
	}
	eventually(t, "namespace empties after kill", func() error {
		if p := nsPids(t, h0.Namespace()); len(p) > 0 {
			return fmt.Errorf("still running in %s: %v", h0.Namespace(), p)
		}
		return nil
	})
}

func TestPartitionGroups(t *testing.T) {
	nw := newNet(t, 3)
	var addrs []string
	for _, h := range nw.Hosts() {
		addrs = append(addrs, serve(t, h, 8080))
	}
	reach := func(from, to int) error { return hello(nw.Host(from).DialContext, addrs[to], time.Second) }

	for _, p := range [][2]int{{0, 1}, {1, 2}, {2, 0}} {
		if err := reach(p[0], p[1]); err != nil {
			t.Fatalf("%d -> %d before partition: %v", p[0], p[1], err)
		}
	}
	// Leader alone vs the rest.
	if err := nw.PartitionGroups([][]int{{0}, {1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := reach(1, 2); err != nil {
		t.Fatalf("1 -> 2 inside the majority: %v", err)
	}
	for _, p := range [][2]int{{1, 0}, {0, 2}} {
		if err := reach(p[0], p[1]); err == nil {
			t.Fatalf("%d -> %d crossed the partition", p[0], p[1])
		}
	}
	if err := nw.PartitionGroups([][]int{{0}, {0, 1}}); err == nil {
		t.Fatal("a host in two groups was accepted")
	}
	if err := nw.HealAll(); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]int{{1, 0}, {0, 2}} {
		eventually(t, fmt.Sprintf("%d -> %d after heal", p[0], p[1]), func() error { return reach(p[0], p[1]) })
	}

	if _, err := nw.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("god's-eye dialer accepted an address outside the network")
	}
	if err := nw.Partition(3); err == nil {
		t.Fatal("Partition accepted a host that does not exist")
	}
}

func namespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}

	// Leftovers: one from a process that is gone (must be removed), one
	// from a live process (the go command running us; must be kept).
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-1-sw", prefix, dead.Process.Pid)
	live := fmt.Sprintf("%s%d-%d-live", prefix, os.Getppid(), os.Getpid()) // unique per test process
	for _, ns := range []string{stale, live} {
		if err := ip("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = ip("netns", "del", stale); _ = ip("netns", "del", live) })

	var made []string
	t.Run("net", func(t *testing.T) {
		nw, err := New(t, 2)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, nw.sw)
		for _, h := range nw.Hosts() {
			made = append(made, h.Namespace())
		}
		// A stray process in a host namespace must not keep it alive.
		stray := nw.Host(1).Command(nil, os.Args[0])
		stray.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := stray.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = stray.Wait() }()
		have := namespaces(t)
		for _, ns := range made {
			if !slices.Contains(have, ns) {
				t.Fatalf("namespace %s missing while the network is up", ns)
			}
		}
		if slices.Contains(have, stale) {
			t.Errorf("stale namespace %s of dead pid %d was not removed", stale, dead.Process.Pid)
		}
		if !slices.Contains(have, live) {
			t.Errorf("namespace %s of live pid %d was removed", live, os.Getppid())
		}
	})
	have := namespaces(t)
	for _, ns := range made {
		if slices.Contains(have, ns) {
			t.Errorf("namespace %s left after cleanup", ns)
		}
	}
}
