package schedule

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const testNow = Epoch(1_000_000)

func node(id string, gpus int) Node {
	return Node{ID: id, GPUs: gpus, PartitionTime: 4 * time.Minute, Alive: true}
}

// baseCluster: 12 miners with staggered periods and 1-3 partitions in most
// deadlines, over three 2-GPU nodes. About 40% of the GPUs are needed.
func baseCluster() Input {
	in := Input{Now: testNow, Nodes: []Node{node("a", 2), node("b", 2), node("c", 2)}}
	for m := range 12 {
		mi := Miner{ID: uint64(100 + m), PeriodStart: Epoch(m * 173)}
		for d := range Deadlines {
			mi.Partitions[d] = (m + d) % 4 // 0..3
		}
		in.Miners = append(in.Miners, mi)
	}
	return in
}

func owned(p Plan, nodeID string) map[Key]bool {
	out := map[Key]bool{}
	for _, a := range p.Assignments {
		if a.Node == nodeID {
			out[a.Key] = true
		}
	}
	return out
}

func nodeIndex(in Input, id string) int {
	for i, n := range in.Nodes {
		if n.ID == id {
			return i
		}
	}
	panic(id)
}

// TestReplan changes one thing in a planned cluster and checks what moves.
// Rebalancing is off: this is what stickiness alone moves (rebalance_test.go
// tests what rebalancing adds).
func TestReplan(t *testing.T) {
	base := baseCluster()
	base.Config.RebalanceMoves = -1
	first := mustCompute(t, base)
	checkPlan(t, base, first)
	// From scratch, windows open at Now are handed out late; a few are too
	// late to prove, but every deadline has an owner.
	for _, u := range first.Unplaced {
		if u.Reason != UnplacedTooLate {
			t.Fatalf("base plan: %+v", u)
		}
	}
	if len(first.Assignments) != 12*Deadlines {
		t.Fatalf("base plan: %d assigned", len(first.Assignments))
	}
	ofB := owned(first, "b")
	if len(ofB) == 0 {
		t.Fatal("node b owns nothing in the base plan; the test would prove nothing")
	}
	// onlyFromB: exactly b's deadlines move, for reason r, to someone else.
	onlyFromB := func(r MoveReason) func(*testing.T, Input, Plan) {
		return func(t *testing.T, in Input, p Plan) {
			if len(p.Moves) != len(ofB) {
				t.Fatalf("%d moves, b owned %d", len(p.Moves), len(ofB))
			}
			for _, m := range p.Moves {
				if !ofB[m.Key] || m.From != "b" || m.To == "" || m.To == "b" || m.Reason != r {
					t.Fatalf("unexpected move %+v", m)
				}
				if o, _ := p.Owner(m.Key); o.Since != in.Now {
					t.Fatalf("moved %v has Since %d, want Now", m.Key, o.Since)
				}
			}
			if len(owned(p, "b")) != 0 {
				t.Fatal("b still owns deadlines")
			}
		}
	}
	tests := []struct {
		name   string
		change func(*Input)
		check  func(*testing.T, Input, Plan)
	}{
		{"no change is a fixed point", func(*Input) {}, func(t *testing.T, in Input, p Plan) {
			if len(p.Moves) != 0 {
				t.Fatalf("moves: %+v", p.Moves)
			}
		}},
		{"dead node's deadlines move", func(in *Input) { in.Nodes[nodeIndex(*in, "b")].Alive = false }, onlyFromB(MoveOwnerDead)},
		{"draining node's deadlines move", func(in *Input) { in.Nodes[nodeIndex(*in, "b")].Draining = true }, onlyFromB(MoveDraining)},
		{"removed node's deadlines move", func(in *Input) { in.Nodes = append(in.Nodes[:1], in.Nodes[2:]...) }, onlyFromB(MoveOwnerGone)},
		{"added node takes nothing away", func(in *Input) { in.Nodes = append(in.Nodes, node("d", 2)) }, func(t *testing.T, in Input, p Plan) {
			if len(p.Moves) != 0 {
				t.Fatalf("adding a node moved %d deadlines", len(p.Moves))
			}
		}},
		{"added node gets the new miner", func(in *Input) {
			in.Nodes = append(in.Nodes, node("d", 2))
			m := Miner{ID: 999, PeriodStart: 1234}
			for d := range Deadlines {
				m.Partitions[d] = 2
			}
			in.Miners = append(in.Miners, m)
		}, func(t *testing.T, in Input, p Plan) {
			onD := 0
			for _, mv := range p.Moves {
				if mv.Key.Miner != 999 || mv.From != "" || mv.Reason != MoveNew {
					t.Fatalf("unexpected move %+v", mv)
				}
				if mv.To == "d" {
					onD++
				}
			}
			// d is the only idle node, so the least-loaded choice favours it.
			if len(p.Moves) != Deadlines || onD < Deadlines/2 {
				t.Fatalf("%d moves, %d to the new node", len(p.Moves), onD)
			}
		}},
		{"removed miner's assignments are dropped", func(in *Input) { in.Miners = in.Miners[1:] }, func(t *testing.T, in Input, p Plan) {
			if len(p.Moves) != Deadlines {
				t.Fatalf("%d moves", len(p.Moves))
			}
			for _, m := range p.Moves {
				if m.Key.Miner != 100 || m.To != "" || m.Reason != MoveMinerGone {
					t.Fatalf("unexpected move %+v", m)
				}
			}
		}},
		{"node that lost GPUs sheds only what no longer fits", func(in *Input) { in.Nodes[nodeIndex(*in, "c")].GPUs = 1 }, func(t *testing.T, in Input, p Plan) {
			ofC := owned(first, "c")
			if len(p.Moves) == 0 || len(p.Moves) >= len(ofC) {
				t.Fatalf("%d moves of c's %d deadlines", len(p.Moves), len(ofC))
			}
			for _, m := range p.Moves {
				if m.From != "c" || m.Reason != MoveOverloaded {
					t.Fatalf("unexpected move %+v", m)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := baseCluster()
			in.Config.RebalanceMoves = -1
			// Some time later: the windows that were open at the cold start
			// (handed out late, squeezed) have closed.
			in.Now += 200
			in.Current = first.Assignments
			tc.change(&in)
			p := mustCompute(t, in)
			checkPlan(t, in, p)
			for _, u := range p.Unplaced {
				// A window c is proving right now may be too squeezed for
				// anyone else to take over: c keeps it, and it is reported.
				if !strings.HasPrefix(tc.name, "node that lost") || u.Owner != "c" || u.Reason != UnplacedNoCapacity {
					t.Fatalf("unplaced: %+v", u)
				}
			}
			tc.check(t, in, p)
			// Whatever changed, planning the result again changes nothing.
			in.Current = p.Assignments
			if again := mustCompute(t, in); len(again.Moves) != 0 {
				t.Fatalf("re-plan is not a fixed point: %+v", again.Moves[0])
			}
		})
	}
}

// openCluster: one miner whose deadline 5 (2 partitions = 8 GPU-minutes =
// 16 epochs on one GPU) is open at testNow with `left` epochs of usable
// proving time left, owned by node a. Two 1-GPU nodes.
func openCluster(left Epoch) Input {
	open := testNow - DefaultConfig().usableTo() + left
	m := Miner{ID: 7, PeriodStart: open - 5*WindowEpochs}
	m.Partitions[5] = 2
	return Input{
		Now:     testNow,
		Miners:  []Miner{m},
		Nodes:   []Node{node("a", 1), node("b", 1)},
		Current: []Assignment{{Key{7, 5}, Owner{Node: "a"}}},
	}
}

func TestOpenDeadline(t *testing.T) {
	k := Key{7, 5}
	tests := []struct {
		name      string
		left      Epoch
		a         Node
		wantOwner string
		wantSince Epoch
		wantMove  bool
		unplaced  UnplacedReason // "" for none
	}{
		// 40 epochs left, 2 lost to StartDelay: 38 >= 16.
		{"dead owner, time remains: moves now", 40, Node{ID: "a", GPUs: 1, Alive: false}, "b", testNow, true, ""},
		{"draining owner, time remains: moves now", 40, Node{ID: "a", GPUs: 1, Alive: true, Draining: true}, "b", testNow, true, ""},
		// 17 left, 15 after the start delay: not enough for 16.
		{"dead owner, too late: reported, next period assigned", 17, Node{ID: "a", GPUs: 1, Alive: false}, "b", testNow + 17, true, UnplacedTooLate},
		{"draining owner, too late: it finishes the window", 17, Node{ID: "a", GPUs: 1, Alive: true, Draining: true}, "a", 0, false, ""},
		{"healthy owner keeps an open window", 5, Node{ID: "a", GPUs: 1, PartitionTime: 4 * time.Minute, Alive: true}, "a", 0, false, ""},
		{"just enough time: moves", 18, Node{ID: "a", GPUs: 1, Alive: false}, "b", testNow, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := openCluster(tc.left)
			in.Nodes[0] = tc.a
			in.Nodes[0].PartitionTime = 4 * time.Minute
			p := mustCompute(t, in)
			o, _ := p.Owner(k)
			if o.Node != tc.wantOwner || o.Since != tc.wantSince {
				t.Fatalf("owner %+v, want %s since %d", o, tc.wantOwner, tc.wantSince)
			}
			moved := false
			for _, m := range p.Moves {
				moved = moved || m.Key == k
			}
			if moved != tc.wantMove {
				t.Fatalf("moves %+v", p.Moves)
			}
			var got UnplacedReason
			for _, u := range p.Unplaced {
				if u.Key == k {
					got = u.Reason
					if u.Owner != tc.wantOwner || u.Detail == "" {
						t.Fatalf("unplaced %+v", u)
					}
				}
			}
			if got != tc.unplaced || len(p.Unplaced) > 1 {
				t.Fatalf("unplaced %+v, want %q", p.Unplaced, tc.unplaced)
			}
			// The new owner's demand for the rest of the window is the work
			// over the time it has, not over the full window.
			if tc.wantMove && tc.unplaced == "" {
				want := 2 * 240.0 / (float64(tc.left-2) * 30)
				if got := demand(in, p.Assignments)["b"][5]; got < want-1e-9 || got > want+1e-9 {
					t.Fatalf("b's demand %.4f GPUs, want %.4f", got, want)
				}
				if peak := p.Nodes[1].Peak; peak < want-1e-6 || peak > want+1e-6 {
					t.Fatalf("plan's peak for b %.6f, want %.6f", peak, want)
				}
			}
			in.Current = p.Assignments
			if again := mustCompute(t, in); len(again.Moves) != 0 || len(again.Unplaced) != 0 {
				t.Fatalf("re-plan: moves %+v unplaced %+v", again.Moves, again.Unplaced)
			}
		})
	}
}

func TestOverCapacity(t *testing.T) {
	same := func(id uint64, parts int) Miner {
		m := Miner{ID: id, PeriodStart: testNow + 500}
		m.Partitions[0] = parts
		return m
	}
	tests := []struct {
		name    string
		in      Input
		want    map[Key]UnplacedReason
		owner   map[Key]string // expected owners ("" = none)
		detail  string
		changed func(*Input)
	}{
		{
			// 20 partitions x 4 min = 80 min on one GPU, window is 36 min.
			name:   "too big for any node",
			in:     Input{Now: testNow, Miners: []Miner{same(1, 20)}, Nodes: []Node{node("a", 1)}},
			want:   map[Key]UnplacedReason{{1, 0}: UnplacedTooBig},
			owner:  map[Key]string{{1, 0}: ""},
			detail: "even when idle",
		},
		{
			// Two deadlines of 6 partitions (24 min each) in the same window
			// on one GPU: one fits, the other does not.
			name:   "no room in the window",
			in:     Input{Now: testNow, Miners: []Miner{same(1, 6), same(2, 6)}, Nodes: []Node{node("a", 1)}},
			want:   map[Key]UnplacedReason{{2, 0}: UnplacedNoCapacity},
			owner:  map[Key]string{{1, 0}: "a", {2, 0}: ""},
			detail: "full during this window",
		},
		{
			name:   "no nodes",
			in:     Input{Now: testNow, Miners: []Miner{same(1, 1)}, Nodes: []Node{{ID: "a", GPUs: 4, Alive: false}}},
			want:   map[Key]UnplacedReason{{1, 0}: UnplacedNoCapacity},
			owner:  map[Key]string{{1, 0}: ""},
			detail: "no node is alive",
		},
		{
			// Both assigned to a, which then loses a GPU and nobody else can
			// take the deadline: the previous owner keeps it, reported.
			name: "over-full owner keeps what no one else can take",
			in: Input{Now: testNow, Miners: []Miner{same(1, 6), same(2, 6)}, Nodes: []Node{node("a", 1)},
				Current: []Assignment{{Key{1, 0}, Owner{Node: "a"}}, {Key{2, 0}, Owner{Node: "a"}}}},
			want:   map[Key]UnplacedReason{{2, 0}: UnplacedNoCapacity},
			owner:  map[Key]string{{1, 0}: "a", {2, 0}: "a"},
			detail: "kept by the previous owner a",
		},
		{
			// A 10-min/partition node cannot prove 4 partitions (40 min) in
			// a 36-min window; the 4-min node can.
			name:  "slow node is not eligible for a large deadline",
			in:    Input{Now: testNow, Miners: []Miner{same(1, 4)}, Nodes: []Node{{ID: "a-slow", GPUs: 1, PartitionTime: 10 * time.Minute, Alive: true}, node("b", 1)}},
			want:  map[Key]UnplacedReason{},
			owner: map[Key]string{{1, 0}: "b"},
		},
		{
			// Integrality: 3 partitions of 20 min on 2 GPUs need 40 min in a
			// 36-min window although the fluid demand is 1.67 of 2 GPUs.
			name:  "partitions do not split across GPUs",
			in:    Input{Now: testNow, Miners: []Miner{same(1, 3)}, Nodes: []Node{{ID: "a", GPUs: 2, PartitionTime: 20 * time.Minute, Alive: true}}},
			want:  map[Key]UnplacedReason{{1, 0}: UnplacedTooBig},
			owner: map[Key]string{{1, 0}: ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompute(t, tc.in)
			got := map[Key]UnplacedReason{}
			for _, u := range p.Unplaced {
				if u.Key.Deadline != 0 { // empty deadlines of the "no nodes" case
					continue
				}
				got[u.Key] = u.Reason
				if !strings.Contains(u.Detail, tc.detail) {
					t.Errorf("%v detail %q lacks %q", u.Key, u.Detail, tc.detail)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("unplaced %v, want %v", got, tc.want)
			}
			for k, want := range tc.owner {
				if o, _ := p.Owner(k); o.Node != want {
					t.Fatalf("%v owned by %q, want %q", k, o.Node, want)
				}
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	m := Miner{ID: 1}
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"empty node id", Input{Nodes: []Node{{GPUs: 1}}}, "empty id"},
		{"duplicate node", Input{Nodes: []Node{node("a", 1), node("a", 2)}}, "duplicate node"},
		{"negative gpus", Input{Nodes: []Node{node("a", -1)}}, "negative"},
		{"duplicate miner", Input{Miners: []Miner{m, m}}, "duplicate miner"},
		{"negative partitions", Input{Miners: []Miner{{ID: 1, Partitions: [Deadlines]int{3: -1}}}}, "partitions"},
		{"duplicate current", Input{Miners: []Miner{m}, Current: []Assignment{{Key{1, 0}, Owner{Node: "a"}}, {Key{1, 0}, Owner{Node: "b"}}}}, "twice"},
		{"no proving time", Input{Config: Config{Confidence: 40, SubmitMargin: 40}}, "no proving time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStaleCurrentRemoved(t *testing.T) {
	in := Input{Now: testNow, Miners: []Miner{{ID: 5}}, Nodes: []Node{node("a", 1)},
		Current: []Assignment{{Key{5, 60}, Owner{Node: "a"}}, {Key{9, 1}, Owner{Node: "a"}}, {Key{5, 1}, Owner{Node: "ghost"}}}}
	p := mustCompute(t, in)
	want := map[Key]Move{
		{5, 1}:  {Key{5, 1}, "ghost", "a", MoveOwnerGone},
		{5, 60}: {Key{5, 60}, "a", "", MoveBadDeadline},
		{9, 1}:  {Key{9, 1}, "a", "", MoveMinerGone},
	}
	n := 0
	for _, m := range p.Moves {
		if w, ok := want[m.Key]; ok {
			n++
			if m != w {
				t.Fatalf("move %+v, want %+v", m, w)
			}
		}
	}
	if n != len(want) {
		t.Fatalf("moves %+v", p.Moves)
	}
}

func TestNextInstance(t *testing.T) {
	cfg := DefaultConfig() // usable window [open-16, open+56)
	tests := []struct {
		name     string
		now      Epoch
		start    Epoch
		d        int
		open     Epoch
		from, to int32
	}{
		{"ahead", 1000, 2000, 0, 2000, 984, 1056},
		{"deadline index", 1000, 2000, 3, 2180, 1164, 1236},
		{"period start given as any epoch", 1000, 2000 - 7*PeriodEpochs, 0, 2000, 984, 1056},
		{"open, started", 1000, 990, 0, 990, -26, 46},
		{"last usable epoch", 1000, 945, 0, 945, -71, 1},
		{"usable time over: next period", 1000, 944, 0, 944 + PeriodEpochs, PeriodEpochs - 72, PeriodEpochs},
		{"negative epochs", -100, -50, 0, -50, 34, 106},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nextInstance(cfg, tc.now, tc.start, tc.d)
			if got != (instance{tc.open, tc.from, tc.to}) {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	m := Miner{ID: 3, PeriodStart: 100}
	m.Partitions[1] = 4
	as := []Assignment{{Key{3, 1}, Owner{Node: "b"}}, {Key{3, 0}, Owner{Node: "a"}}}
	// At 130 deadline 0 (open 100..160) is open; 24 h ends at 3010, before
	// deadline 0 opens again at 2980+... so 48 windows plus the reopening.
	slots := Timeline([]Miner{m}, as, Config{}, 130, PeriodEpochs)
	if len(slots) != 49 {
		t.Fatalf("%d slots", len(slots))
	}
	first := slots[0]
	if first.Key != (Key{3, 0}) || first.Owner != "a" || first.Open != 100 || first.Close != 160 ||
		first.Challenge != 80 || first.ProveFrom != 84 || first.ProveBy != 156 {
		t.Fatalf("first slot %+v", first)
	}
	if s := slots[1]; s.Key != (Key{3, 1}) || s.Owner != "b" || s.Partitions != 4 || s.Open != 160 {
		t.Fatalf("second slot %+v", s)
	}
	if last := slots[48]; last.Key != (Key{3, 0}) || last.Open != 100+PeriodEpochs || last.Owner != "a" {
		t.Fatalf("last slot %+v", last)
	}
	for i := 1; i < len(slots); i++ {
		if slots[i].Open < slots[i-1].Open {
			t.Fatal("not sorted by opening epoch")
		}
	}
	if slots[5].Owner != "" {
		t.Fatalf("unassigned deadline shows owner %q", slots[5].Owner)
	}
}
