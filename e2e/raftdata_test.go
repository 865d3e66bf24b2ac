package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/internal/harness"
)

// refusedStart starts n, which must refuse to start: it exits by itself,
// its log names every want, points at the runbook, and shows no crash.
func refusedStart(t *testing.T, n *harness.Node, want ...string) string {
	t.Helper()
	n.Start()
	if !n.WaitExit(30 * time.Second) {
		t.Fatalf("%s started on damaged raft data instead of refusing; log:\n%s", n.ID, n.Log())
	}
	log := n.Log()
	for _, w := range append(want, cluster.Runbook) {
		if !strings.Contains(log, w) {
			t.Fatalf("%s's refusal does not mention %q; log:\n%s", n.ID, w, log)
		}
	}
	for _, crash := range []string{"panic:", "SIGSEGV", "unexpected fault address", "goroutine "} {
		if strings.Contains(log, crash) {
			t.Fatalf("%s crashed (%q) instead of refusing cleanly; log:\n%s", n.ID, crash, log)
		}
	}
	return log
}

func putSectors(t *testing.T, n *harness.Node, nums ...string) {
	t.Helper()
	for _, num := range nums {
		n.MustRun("sector", "location", "put", "--miner", "t01000", "--number", num, "--sealed", "s", "--cache", "s")
	}
}

func truncateLog(t *testing.T, n *harness.Node) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.Home, "daemon.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLostRaftDBSingleNode (issue 11 item 1): with raft.db gone but the
// cluster-id kept, 'daemon run --bootstrap' used to start a new, empty
// cluster under the old id and report healthy. It must refuse, say why and
// where the runbook is; the runbook's way out (forget-state, start, restore
// the backup) brings the data back.
func TestLostRaftDBSingleNode(t *testing.T) {
	n := startSingle(t)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/s")
	putSectors(t, n, "1", "2")
	backup := filepath.Join(t.TempDir(), "b.vsm")
	n.MustRun("cluster", "snapshot", "save", backup)
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(n.Home, "raft", "raft.db")
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	truncateLog(t, n)
	refusedStart(t, n, "raft.db is missing or empty", "#lost-raft-db")
	if _, err := os.Stat(db); err == nil {
		t.Fatal("the refused start created a new raft.db")
	}
	// The same with an empty raft.db (a fresh file put in its place).
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	truncateLog(t, n)
	refusedStart(t, n, "raft.db is missing or empty")

	// Runbook: forget-state, start, restore the last backup.
	out := n.MustRun("cluster", "forget-state")
	if !strings.Contains(out, "raft.lost-") {
		t.Fatalf("forget-state said %s", out)
	}
	n.Start()
	n.WaitHealthy(20 * time.Second)
	n.MustRun("cluster", "snapshot", "restore", backup)
	deadline := time.Now().Add(10 * time.Second)
	for !allLocations(t, n)[2] {
		if time.Now().After(deadline) {
			t.Fatal("restored backup does not hold sector 2")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWipedMemberDoesNotVote (issue 11 item 1): a voter whose raft.db was
// wiped must not come back as a voter with an empty log. It refuses to
// start; after remove-peer and forget-state (the runbook) it rejoins empty,
// as a non-voter first, and ends up a voter holding the data.
func TestWipedMemberDoesNotVote(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	leader.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	leader.MustRun("storage", "add", "s", "--path", "/s")
	putSectors(t, leader, "1", "2", "3")
	waitConverged(t, nodes, []uint64{1, 2, 3})
	var victim *harness.Node
	for _, n := range nodes {
		if n != leader {
			victim = n
		}
	}
	if err := victim.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(victim.Home, "raft", "raft.db")); err != nil {
		t.Fatal(err)
	}
	truncateLog(t, victim)
	refusedStart(t, victim, "must not vote", "#lost-raft-db")

	// Runbook: remove it on a healthy member, forget its state, start it
	// with its usual command line.
	leader.MustRun("cluster", "remove-peer", victim.ID)
	victim.MustRun("cluster", "forget-state")
	truncateLog(t, victim)
	victim.Start()
	sawNonVoter := false
	deadline := time.Now().Add(40 * time.Second)
	for {
		peers := peersOf(t, leader)
		i := slices.IndexFunc(peers, func(p cluster.Peer) bool { return p.ID == victim.ID })
		if i >= 0 && !peers[i].Voter {
			sawNonVoter = true
		}
		if i >= 0 && peers[i].Voter {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not re-added as a voter: %+v\n%s\nleader:\n%s", victim.ID, peers, victim.Log(), leader.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawNonVoter {
		t.Fatalf("%s came back straight as a voter, without a non-voter phase", victim.ID)
	}
	victim.WaitHealthy(20 * time.Second)
	waitConverged(t, []*harness.Node{victim}, []uint64{1, 2, 3})
}

// TestDamagedRaftFiles (issue 11 item 7): a truncated raft.db used to
// crash the daemon inside bolt (SIGSEGV), a corrupt snapshot stopped
// start-up without naming the file, and a raft.db deleted next to a kept
// snapshot dropped the writes after the snapshot silently. Each is now
// refused with the file named and the runbook section; the kept-snapshot
// way out is rehearsed.
func TestDamagedRaftFiles(t *testing.T) {
	n := startSingle(t)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/s")
	putSectors(t, n, "1", "2")
	cl := n.Client(n.Token())
	if err := cl.Call(context.Background(), "VSM.SnapshotNow", nil); err != nil {
		t.Fatal(err)
	}
	putSectors(t, n, "3") // after the snapshot: only the log has it
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	raftDir := filepath.Join(n.Home, "raft")
	db := filepath.Join(raftDir, "raft.db")
	good, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("truncated raft.db", func(t *testing.T) {
		if err := os.WriteFile(db, good[:len(good)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		truncateLog(t, n)
		refusedStart(t, n, db, "truncated", "#raft-db-corrupt")
		if err := os.WriteFile(db, good, 0o600); err != nil {
			t.Fatal(err)
		}
	})

	snaps, err := filepath.Glob(filepath.Join(raftDir, "snapshots", "*", "state.bin"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("want one snapshot, have %v %v", snaps, err)
	}
	t.Run("corrupt snapshot", func(t *testing.T) {
		orig, err := os.ReadFile(snaps[0])
		if err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(orig)
		bad[len(bad)/2] ^= 0xff
		if err := os.WriteFile(snaps[0], bad, 0o600); err != nil {
			t.Fatal(err)
		}
		truncateLog(t, n)
		refusedStart(t, n, snaps[0], "CRC", "#snapshot-corrupt")
		if err := os.WriteFile(snaps[0], orig, 0o600); err != nil {
			t.Fatal(err)
		}
	})

	// With the good files back the node starts and holds everything: the
	// checks are no false alarm.
	truncateLog(t, n)
	n.Start()
	n.WaitHealthy(20 * time.Second)
	if have := allLocations(t, n); !have[1] || !have[2] || !have[3] {
		t.Fatalf("after putting the good files back: %v", have)
	}
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("raft.db deleted, snapshot kept", func(t *testing.T) {
		if err := os.Remove(db); err != nil {
			t.Fatal(err)
		}
		truncateLog(t, n)
		refusedStart(t, n, "raft.db is missing or empty but snapshot", "#snapshot-without-log")
		// Runbook: the operator accepts the loss of what came after the
		// snapshot.
		out := n.MustRun("cluster", "forget-state", "--keep-snapshot")
		if !strings.Contains(out, "kept snapshot") {
			t.Fatalf("forget-state said %s", out)
		}
		n.Start()
		n.WaitHealthy(20 * time.Second)
		have := allLocations(t, n)
		if !have[1] || !have[2] {
			t.Fatalf("restart from the kept snapshot lost its sectors: %v", have)
		}
		putSectors(t, n, "4")
	})
}

// setLogStore rewrites the [Raft] LogStore line of n's config.toml.
func setLogStore(t *testing.T, n *harness.Node, store string) {
	t.Helper()
	path := filepath.Join(n.Home, "config.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "LogStore = ") })
	if i < 0 {
		t.Fatalf("config.toml has no LogStore line:\n%s", b)
	}
	lines[i] = `LogStore = "` + store + `"`
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLogMovesToWAL: a node whose raft log is in raft.db (a home made
// before the WAL, here LogStore = "bolt") is started with the default
// LogStore = "wal". Every acknowledged write is still there, the log now
// lives in raft/wal/, the move is logged, a kill -9 and restart keep
// everything, and going back to "bolt" is refused with what to do.
func TestLogMovesToWAL(t *testing.T) {
	n := harness.NewNode(t, "n1")
	n.RunArgs = []string{"--bootstrap"}
	setLogStore(t, n, "bolt")
	n.Start()
	n.WaitHealthy(20 * time.Second)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/s")
	putSectors(t, n, "1", "2", "3")
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(n.Home, "raft", "wal")
	if _, err := os.Stat(walDir); err == nil {
		t.Fatal("LogStore = bolt made raft/wal/")
	}

	setLogStore(t, n, "wal")
	truncateLog(t, n)
	n.Start()
	n.WaitHealthy(20 * time.Second)
	if !strings.Contains(n.Log(), "moved the raft log from raft.db to wal/") {
		t.Fatalf("the move is not logged:\n%s", n.Log())
	}
	if have := allLocations(t, n); !have[1] || !have[2] || !have[3] {
		t.Fatalf("after the move: %v", have)
	}
	putSectors(t, n, "4")
	n.Kill()
	truncateLog(t, n)
	n.Start()
	n.WaitHealthy(20 * time.Second)
	if have := allLocations(t, n); !have[1] || !have[2] || !have[3] || !have[4] {
		t.Fatalf("after kill -9 and restart on the WAL: %v", have)
	}
	if strings.Contains(n.Log(), "moved the raft log") {
		t.Fatal("the log was moved a second time")
	}
	segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if len(segs) == 0 {
		t.Fatalf("no segment files in %s", walDir)
	}
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	setLogStore(t, n, "bolt")
	truncateLog(t, n)
	n.Start()
	if !n.WaitExit(30 * time.Second) {
		t.Fatalf("started with LogStore = bolt on a log in wal/; log:\n%s", n.Log())
	}
	if log := n.Log(); !strings.Contains(log, `set [Raft] LogStore = "wal"`) {
		t.Fatalf("the refusal does not say what to do:\n%s", log)
	}
}

// TestDamagedWALMeta: the WAL's own index (wal-meta.db) overwritten is
// refused with the file named and the runbook section, not a crash.
func TestDamagedWALMeta(t *testing.T) {
	n := startSingle(t)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(n.Home, "raft", "wal", "wal-meta.db")
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(meta, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	truncateLog(t, n)
	refusedStart(t, n, filepath.Join(n.Home, "raft", "wal"), "#raft-db-corrupt")
}
