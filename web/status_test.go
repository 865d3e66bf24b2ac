package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
)

type fakeSource struct{ f *fsm.FSM }

func (s fakeSource) Status() cluster.Status {
	return cluster.Status{NodeID: "n1", State: "Leader", LeaderID: "n1", ClusterID: "c0ffee", Term: 3}
}
func (s fakeSource) Members() []cluster.Member {
	return []cluster.Member{
		{Meta: cluster.Meta{ID: "n1", RPC: "127.0.0.1:1", Capacity: cluster.Capacity{GPUs: 2, Children: 2, ChildrenReady: 2, Slots: 2}}, State: "alive"},
		{Meta: cluster.Meta{ID: "n2", Draining: true}, State: "dead"},
	}
}
func (s fakeSource) FSM() *fsm.FSM { return s.f }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStatusPageShowsMembersDeadlinesAndOutcomes(t *testing.T) {
	f := fsm.New(nil)
	f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2, Enabled: true}})
	f.ApplyCommand(fsm.RecordDeadline{Record: fsm.DeadlineRecord{DeadlineKey: fsm.DeadlineKey{Miner: 1000, Deadline: 7}, PeriodStart: 2880, Outcome: fsm.OutcomeProven, Node: "n1", DurationMS: 1234}})
	sched := func(context.Context) (Schedule, error) {
		return Schedule{Head: 5000, Slots: []Slot{{Miner: 1000, Deadline: 8, Open: 5060, Close: 5120, Owner: "n1", Partitions: 3}, {Miner: 1000, Deadline: 9, Open: 5120, Close: 5180}},
			Unplaced:   []Unplaced{{Deadline: "f01000/9", Reason: "no-capacity", Detail: "every live node that could prove them is full"}},
			LowerBound: 0.25, PeakShare: 0.275}, nil
	}
	code, body := get(t, NewHandler(fakeSource{f}, sched, zap.NewNop()), "/")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`leader <b id="leader">n1</b>`, "c0ffee",
		`n1 (leader)`, `class="state-dead">dead`, // members with states
		`data-node="n1"`, `data-node="(unassigned)"`, "t01000 deadline 8: epochs 60–120 from now, 3 partitions",
		"left: 2.083%; width: 2.083%", "hsl(", // timeline bars are placed and coloured
		`class="o-proven">proven`, "1234 ms", // recent outcomes
		`id="unplaced">1 deadlines without a fitting owner`, "<td>f01000/9</td><td>no-capacity</td><td>-</td>", // unplaced, with the reason
		"busiest node 27.5% of its GPUs at its peak; lower bound 25%",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "ZgotmplZ") {
		t.Error("the template escaped a value it should have rendered")
	}
}

func TestStatusPageWithoutChain(t *testing.T) {
	code, body := get(t, NewHandler(fakeSource{fsm.New(nil)}, nil, zap.NewNop()), "/")
	if code != 200 || !strings.Contains(body, "no chain configured") || !strings.Contains(body, "no deadline has been recorded") {
		t.Fatalf("%d %s", code, body)
	}
	failing := func(context.Context) (Schedule, error) { return Schedule{}, errors.New("chain unreachable") }
	if _, body := get(t, NewHandler(fakeSource{fsm.New(nil)}, failing, zap.NewNop()), "/"); !strings.Contains(body, "chain unreachable") {
		t.Fatal("schedule error not shown")
	}
	if code, _ := get(t, NewHandler(fakeSource{fsm.New(nil)}, nil, zap.NewNop()), "/nope"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
}

type membersSource struct {
	fakeSource
	members []cluster.Member
}

func (s membersSource) Members() []cluster.Member { return s.members }

// TestStatusPageFirstHourItems: a dead or left member shows no capacity
// (its last gossip is not what it has now), a 1 ms partition is "1 ms" and
// not "0.0", and a window beyond the 24 h horizon is not drawn past the
// right edge.
func TestStatusPageFirstHourItems(t *testing.T) {
	src := membersSource{fakeSource: fakeSource{fsm.New(nil)}, members: []cluster.Member{
		{Meta: cluster.Meta{ID: "n1", Capacity: cluster.Capacity{GPUs: 1, Children: 1, ChildrenReady: 1, Slots: 1, SecondsPerPartition: 0.001}}, State: "alive"},
		{Meta: cluster.Meta{ID: "n2", Capacity: cluster.Capacity{GPUs: 7, Children: 7, ChildrenReady: 7, Slots: 9}}, State: "dead"},
		{Meta: cluster.Meta{ID: "n3", Capacity: cluster.Capacity{GPUs: 5, Children: 5, ChildrenReady: 5, Slots: 8}}, State: "left"},
	}}
	sched := func(context.Context) (Schedule, error) {
		return Schedule{Slots: []Slot{{Miner: 1000, Deadline: 1, Open: 100, Close: 160, Owner: "n1"}, {Miner: 1000, Deadline: 2, Open: 2900, Close: 2960, Owner: "n1"}}}, nil
	}
	_, body := get(t, NewHandler(src, sched, zap.NewNop()), "/")
	if !strings.Contains(body, "<td>1 ms</td>") || strings.Contains(body, "<td>0.0</td>") {
		t.Error("a 1 ms partition is not shown as 1 ms")
	}
	if strings.Contains(body, "7/7") || strings.Contains(body, "5/5") || strings.Contains(body, "9 −") {
		t.Error("a dead or left member still shows ready children or free slots")
	}
	if !strings.Contains(body, `class="state-left">left`) {
		t.Error("a left member is not shown as left")
	}
	if strings.Contains(body, "deadline 2:") {
		t.Error("a window beyond the 24 h horizon is drawn")
	}
	for _, s := range []struct {
		v    float64
		want string
	}{{0, "-"}, {0.0004, "1 ms"}, {0.25, "250 ms"}, {3.14, "3.1 s"}} {
		if got := Seconds(s.v); got != s.want {
			t.Errorf("Seconds(%v) = %q, want %q", s.v, got, s.want)
		}
	}
}
