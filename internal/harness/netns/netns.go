//go:build linux

// Package netns gives each node of a real-process test its own Linux
// network namespace and address, joined by a bridge, so that a network
// partition is simply a link taken down.
//
// Layout for a Net of n hosts (all names carry the creating pid and a
// per-process counter, so parallel test processes never collide):
//
//	vsmtest-<pid>-<k>-sw      "switch" namespace: bridge br0 (plus brg1.. for
//	                          PartitionGroups) and one port p<i> per host
//	vsmtest-<pid>-<k>-h<i>    host i: lo, and eth0 = 198.18.0.(10+i)/24,
//	                          the peer of p<i>
//
// Nothing is created in the root namespace: the switch namespace and the
// hosts are reachable only from each other, so 198.18.0.0/24 (RFC 2544's
// benchmarking range) can never leak onto a real network. There is no
// default route and no NAT anywhere. The test process itself reaches the
// hosts with Host.DialContext / Net.DialContext, which open the socket
// inside the host's namespace and are therefore unaffected by partitions.
//
// Using it from a real-process harness:
//
//	if err := netns.Available(); err != nil {
//		// fall back to 127.0.0.x; t.Skip partition cases with err
//	}
//	nw, err := netns.New(t, 3)
//	h := nw.Host(i)                        // node i: listen on h.Addr()+":7000" etc.;
//	cmd := h.Command(ctx, bin, args...)    // every host has its own ports, so fixed ones do
//	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
//	client := &http.Client{Transport: &http.Transport{DialContext: nw.DialContext}}
//	nw.Partition(leader) ... nw.Heal(leader)
//
// A plain http.Get of 198.18.0.x from the test process would NOT reach the
// nodes: the root namespace has no route to them and would send it to its
// default gateway instead. Always dial through DialContext.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// prefix starts every namespace this package creates; stale-namespace
	// cleanup only ever touches names that match it.
	prefix = "vsmtest-"
	// Subnet is the RFC 2544 benchmarking range reserved for these tests.
	Subnet = "198.18.0.0/24"
	// firstHost is the last octet of host 0's address.
	firstHost = 10
	// mainBridge is the bridge every port sits on when nothing is partitioned.
	mainBridge = "br0"
)

// seq makes names unique within one process; the pid makes them unique
// across processes. It is the package's only mutable global.
var seq atomic.Uint64

// staleName matches our namespaces and captures the creator's pid.
var staleName = regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\d+)-\d+-`)

// Net is one isolated test network of n hosts joined by a bridge.
type Net struct {
	t      testing.TB
	name   string // vsmtest-<pid>-<k>
	sw     string // switch namespace
	hosts  []Host
	mu     sync.Mutex // serialises topology changes and close
	groups int        // extra bridges brg1..brgN created so far
	closed bool
}

// Host is one namespace on a Net. It is a small value; copies are fine.
type Host struct {
	index int
	ns    string
	addr  string
}

// Available reports whether namespaced networks can be built here: nil when
// running as root with `ip` and working network namespaces, bridges and veth
// pairs (tried for real in a throwaway namespace), else an error saying why,
// suitable for t.Skip.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: not running as root (network namespaces need CAP_SYS_ADMIN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netns: iproute2 `ip` not found: %w", err)
	}
	probe := fmt.Sprintf("%s%d-%d-probe", prefix, os.Getpid(), seq.Add(1))
	if err := ip("netns", "add", probe); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace: %w", err)
	}
	defer func() { _ = ip("netns", "del", probe) }()
	// Bridges and veth need kernel modules that some containers cannot load;
	// find out now rather than half-way through New.
	if err := ip("-n", probe, "link", "add", "name", "vsmprobe", "type", "bridge"); err != nil {
		return fmt.Errorf("netns: cannot create a bridge: %w", err)
	}
	if err := ip("-n", probe, "link", "add", "name", "vsmprobe0", "type", "veth", "peer", "name", "vsmprobe1"); err != nil {
		return fmt.Errorf("netns: cannot create a veth pair: %w", err)
	}
	return nil
}

// New builds a network of n hosts (1 <= n <= 245) with addresses
// 198.18.0.10, .11, ... and removes it in t.Cleanup. Before building it
// removes namespaces left behind by earlier test processes that died.
func New(t testing.TB, n int) (*Net, error) {
	t.Helper()
	if n < 1 || firstHost+n > 255 {
		return nil, fmt.Errorf("netns: %d hosts requested, want 1..%d", n, 255-firstHost)
	}
	removeStale(t)

	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
	nw := &Net{t: t, name: name, sw: name + "-sw"}
	if err := ip("netns", "add", nw.sw); err != nil {
		return nil, err
	}
	// Registered before anything else is built, so a failure half-way still
	// removes what exists.
	t.Cleanup(nw.close)

	if err := nw.setup(n); err != nil {
		return nil, err
	}
	return nw, nil
}

func (nw *Net) setup(n int) error {
	// The bridge has no address: it only switches frames between the hosts.
	if err := ip("-n", nw.sw, "link", "add", "name", mainBridge, "type", "bridge"); err != nil {
		return err
	}
	if err := ip("-n", nw.sw, "link", "set", mainBridge, "up"); err != nil {
		return err
	}
	for i := range n {
		h := Host{
			index: i,
			ns:    fmt.Sprintf("%s-h%d", nw.name, i),
			addr:  fmt.Sprintf("198.18.0.%d", firstHost+i),
		}
		if err := ip("netns", "add", h.ns); err != nil {
			return err
		}
		nw.hosts = append(nw.hosts, h)
		port := portName(i)
		// Create the pair inside the switch namespace with its peer placed
		// straight into the host: the root namespace never sees either end.
		steps := [][]string{
			{"-n", nw.sw, "link", "add", "name", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
			{"-n", nw.sw, "link", "set", port, "master", mainBridge},
			{"-n", nw.sw, "link", "set", port, "up"},
			{"-n", h.ns, "link", "set", "lo", "up"},
			{"-n", h.ns, "addr", "add", h.addr + "/24", "dev", "eth0"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// portName is host i's port on the bridge, inside the switch namespace.
func portName(i int) string { return "p" + strconv.Itoa(i) }

// Len is the number of hosts.
func (nw *Net) Len() int { return len(nw.hosts) }

// Host returns host i; it panics if i is out of range, like a slice would.
func (nw *Net) Host(i int) Host { return nw.hosts[i] }

// Hosts returns all hosts in index order.
func (nw *Net) Hosts() []Host { return append([]Host(nil), nw.hosts...) }

// Index is the host's position in its Net.
func (h Host) Index() int { return h.index }

// Addr is the host's IPv4 address, e.g. "198.18.0.10".
func (h Host) Addr() string { return h.addr }

// Namespace is the name of the host's network namespace (as in
// `ip netns list`).
func (h Host) Namespace() string { return h.ns }

// Command returns a command that runs name inside the host's namespace via
// `ip netns exec`. ip switches namespace and then execve()s the program in
// place (no fork), so cmd.Process.Pid is the program itself, its process
// group is the one Setpgid creates, and a kill of -pgid or a context
// cancellation reaches the real program. Descendants inherit the namespace.
// A nil ctx means no context.
func (h Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", h.ns, name}, args...)
	if ctx == nil {
		return exec.Command("ip", argv...)
	}
	return exec.CommandContext(ctx, "ip", argv...)
}

// DialContext dials from inside the host's namespace, like a client running
// on that host: to reach another host it crosses the bridge and so obeys
// partitions; to reach the host's own address it does not.
// addr's host must be an IP literal: resolving a name could hand the
// socket creation to another goroutine, outside the namespace.
func (h Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	hostPart, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netns: dial %s: %w", addr, err)
	}
	if net.ParseIP(hostPart) == nil {
		return nil, fmt.Errorf("netns: dial %s: host must be an IP address", addr)
	}
	var c net.Conn
	err = inNamespace(h.ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside the host's namespace (for in-process test
// servers); the socket stays in that namespace for its whole life.
func (h Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNamespace(h.ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// DialContext is the test's god's-eye dialer, for an http.Transport: addr
// must be one of the hosts' addresses, and the connection is made from
// inside that very host's namespace, so it always works, partition or not
// (a test must still be able to talk to the minority side of a partition).
// Addresses that are not ours are refused rather than dialled from the root
// namespace.
func (nw *Net) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	hostPart, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netns: dial %s: %w", addr, err)
	}
	for _, h := range nw.hosts {
		if h.addr == hostPart {
			return h.DialContext(ctx, network, addr)
		}
	}
	return nil, fmt.Errorf("netns: dial %s: not the address of a host in %s", addr, nw.name)
}

// inNamespace runs fn on an OS thread switched into namespace ns, so that
// sockets fn creates belong to ns (a socket keeps the namespace it was
// created in). It runs on a fresh goroutine locked to its thread; if the
// thread cannot be switched back it is left locked, and the Go runtime then
// discards it when the goroutine exits instead of reusing a thread that sits
// in the wrong namespace. fn must do its work on the calling goroutine (the
// net package creates the socket synchronously when dialling an IP literal).
func inNamespace(ns string, fn func() error) error {
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("netns: open namespace %s: %w", ns, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open own namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("netns: switch thread back from %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Partition takes the listed hosts' bridge ports down, so each of them can
// reach nobody (not even another listed host) and nobody can reach them.
// The host's own eth0 stays administratively up and keeps its address (it
// just loses carrier), so processes on it keep running undisturbed and the
// test can still reach them with DialContext. Packets are dropped silently,
// as in a real partition: senders see timeouts, not resets.
func (nw *Net) Partition(hosts ...int) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if err := nw.check(hosts); err != nil {
		return err
	}
	for _, i := range hosts {
		if err := ip("-n", nw.sw, "link", "set", portName(i), "down"); err != nil {
			return err
		}
	}
	return nil
}

// Heal undoes Partition and PartitionGroups for the listed hosts: their
// ports go back on the main bridge and come up.
func (nw *Net) Heal(hosts ...int) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if err := nw.check(hosts); err != nil {
		return err
	}
	for _, i := range hosts {
		if err := ip("-n", nw.sw, "link", "set", portName(i), "master", mainBridge, "up"); err != nil {
			return err
		}
	}
	return nil
}

// HealAll heals every host.
func (nw *Net) HealAll() error {
	all := make([]int, len(nw.hosts))
	for i := range all {
		all[i] = i
	}
	return nw.Heal(all...)
}

// PartitionGroups splits the network so that hosts talk only within their
// own group, e.g. {{leader}, {the rest}} or {{0, 1}, {2, 3, 4}}. Each group's
// ports are moved onto a bridge of their own; hosts named in no group stay
// on the main bridge and so form one more group together. A host may appear
// in at most one group. Ports that Partition took down stay down. Undo with
// Heal or HealAll.
func (nw *Net) PartitionGroups(groups [][]int) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	seen := map[int]bool{}
	for _, g := range groups {
		if err := nw.check(g); err != nil {
			return err
		}
		for _, i := range g {
			if seen[i] {
				return fmt.Errorf("netns: host %d is in more than one group", i)
			}
			seen[i] = true
		}
	}
	for k, g := range groups {
		br := "brg" + strconv.Itoa(k+1)
		if k+1 > nw.groups {
			// Bridges are created on first use and kept for reuse; an empty
			// bridge carries nothing.
			if err := ip("-n", nw.sw, "link", "add", "name", br, "type", "bridge"); err != nil {
				return err
			}
			if err := ip("-n", nw.sw, "link", "set", br, "up"); err != nil {
				return err
			}
			nw.groups = k + 1
		}
		for _, i := range g {
			// Moving a port to another bridge detaches it from the old one in
			// the same operation.
			if err := ip("-n", nw.sw, "link", "set", portName(i), "master", br); err != nil {
				return err
			}
		}
	}
	return nil
}

func (nw *Net) check(hosts []int) error {
	if nw.closed {
		return errors.New("netns: network already removed")
	}
	for _, i := range hosts {
		if i < 0 || i >= len(nw.hosts) {
			return fmt.Errorf("netns: no host %d (have %d)", i, len(nw.hosts))
		}
	}
	return nil
}

// close removes the hosts and then the switch. Processes still inside a
// host namespace are killed first: a namespace with a live process survives
// `ip netns del` invisibly, still holding its address and veth.
func (nw *Net) close() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed {
		return
	}
	nw.closed = true
	for _, h := range nw.hosts {
		if err := removeNamespace(h.ns); err != nil {
			nw.t.Errorf("netns cleanup: %v", err)
		}
	}
	if err := removeNamespace(nw.sw); err != nil {
		nw.t.Errorf("netns cleanup: %v", err)
	}
}

// removeNamespace kills whatever still runs in ns and deletes it. Deleting
// the host end of a veth pair deletes the switch end too.
func removeNamespace(ns string) error {
	out, err := exec.Command("ip", "netns", "pids", ns).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return ip("netns", "del", ns)
}

// removeStale deletes namespaces with our prefix whose creating process is
// gone (a test binary that crashed or was killed before its cleanup ran).
// Namespaces of live processes, including parallel test binaries, are left
// alone. Failures are only logged: another process may be removing the
// same leftovers at the same moment.
func removeStale(t testing.TB) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Logf("netns: listing namespaces for stale cleanup: %v: %s", err, bytes.TrimSpace(out))
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line) // "name" or "name (id: 3)"
		if len(fields) == 0 {
			continue
		}
		name := fields[0]
		m := staleName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := removeNamespace(name); err != nil {
			t.Logf("netns: removing stale namespace: %v", err)
		} else {
			t.Logf("netns: removed stale namespace %s (creator pid %d is gone)", name, pid)
		}
	}
}

// processAlive errs towards "alive": only ESRCH proves a process is gone.
// A recycled pid merely delays the cleanup of its namespaces.
func processAlive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// ip runs `ip args...` and wraps any failure with the command line and its
// output.
func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
