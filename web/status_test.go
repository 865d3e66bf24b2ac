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
	sched := func(context.Context) (int64, []Slot, error) {
		return 5000, []Slot{{Miner: 1000, Deadline: 8, Open: 5060, Close: 5120, Owner: "n1", Partitions: 3}, {Miner: 1000, Deadline: 9, Open: 5120, Close: 5180}}, nil
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
	failing := func(context.Context) (int64, []Slot, error) { return 0, nil, errors.New("chain unreachable") }
	if _, body := get(t, NewHandler(fakeSource{fsm.New(nil)}, failing, zap.NewNop()), "/"); !strings.Contains(body, "chain unreachable") {
		t.Fatal("schedule error not shown")
	}
	if code, _ := get(t, NewHandler(fakeSource{fsm.New(nil)}, nil, zap.NewNop()), "/nope"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
}
