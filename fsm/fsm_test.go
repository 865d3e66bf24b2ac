package fsm

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func apply(t *testing.T, f *FSM, cmds ...Command) Result {
	t.Helper()
	var r Result
	for i, c := range cmds {
		// Go through the log encoding, as raft does.
		out := f.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: Encode(c)})
		r = out.(Result)
	}
	return r
}

func miner(id uint64) Miner {
	return Miner{ID: id, SectorSize: 2048, PoStProof: 5, PartitionSize: 2, Enabled: true}
}

func location(m, n uint64, sealed, cache string) SectorLocation {
	l := SectorLocation{SectorID: SectorID{Miner: m, Number: n}, Sealed: sealed, Cache: cache, SealProof: 5}
	l.CommR[0], l.CommR[31] = byte(m), byte(n)
	return l
}

func base() []Command {
	return []Command{
		SetClusterID{ID: "c1"},
		PutMiner{Miner: miner(1000)},
		PutStorage{Instance: StorageInstance{Name: "a", Path: "/mnt/a"}},
		PutStorage{Instance: StorageInstance{Name: "b", Path: "/mnt/b", ReadOnly: true}},
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		cmds    []Command
		reject  string // substring of the rejection, "" if accepted
		changed int
		check   func(t *testing.T, f *FSM)
	}{
		{name: "cluster id is set once", cmds: []Command{SetClusterID{ID: "c2"}}, reject: "already c1"},
		{name: "same cluster id again is fine", cmds: []Command{SetClusterID{ID: "c1"}}, changed: 1},
		{name: "miner zero", cmds: []Command{PutMiner{Miner: Miner{SectorSize: 1, PartitionSize: 1}}}, reject: "id 0"},
		{name: "miner without sizes", cmds: []Command{PutMiner{Miner: Miner{ID: 5}}}, reject: "partition size"},
		{name: "miner update keeps sectors", changed: 1,
			cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "a")}}, PutMiner{Miner: Miner{ID: 1000, SectorSize: 4096, PartitionSize: 3}}},
			check: func(t *testing.T, f *FSM) {
				if m, _ := f.Miner(1000); m.SectorSize != 4096 || f.SectorCount(1000) != 1 {
					t.Fatalf("miner %+v with %d sectors", m, f.SectorCount(1000))
				}
			}},
		{name: "put locations", changed: 2,
			cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "b"), location(1000, 2, "b", "b")}}},
			check: func(t *testing.T, f *FSM) {
				got, ok := f.Location(SectorID{1000, 1})
				if !ok || !reflect.DeepEqual(got, location(1000, 1, "a", "b")) {
					t.Fatalf("location = %+v, %v", got, ok)
				}
			}},
		{name: "location of unknown miner rejects whole batch",
			cmds:   []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "a"), location(2000, 1, "a", "a")}}},
			reject: "miner t02000 does not exist",
			check: func(t *testing.T, f *FSM) {
				if f.SectorCount(1000) != 0 {
					t.Fatal("half a rejected batch was applied")
				}
			}},
		{name: "location with unknown sealed instance", cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "x", "a")}}}, reject: `sealed storage instance "x"`},
		{name: "location with unknown cache instance", cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "y")}}}, reject: `cache storage instance "y"`},
		{name: "delete counts only present", changed: 1,
			cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "a")}}, DeleteLocations{IDs: []SectorID{{1000, 1}, {1000, 9}, {7, 1}}}}},
		{name: "storage in use cannot be removed",
			cmds:   []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "b")}}, RemoveStorage{Name: "b"}},
			reject: `"b" is referenced 1 times`},
		{name: "storage freed by overwrite can be removed", changed: 1,
			cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "b")}}, PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "a")}}, RemoveStorage{Name: "b"}}},
		{name: "remove unknown storage", cmds: []Command{RemoveStorage{Name: "zz"}}, reject: "does not exist"},
		{name: "storage name required", cmds: []Command{PutStorage{Instance: StorageInstance{Path: "/x"}}}, reject: "needs a name"},
		{name: "miner with sectors needs purge",
			cmds:   []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "a")}}, RemoveMiner{ID: 1000}},
			reject: "still has 1 sector locations"},
		{name: "purge releases storage", changed: 1,
			cmds: []Command{PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "a")}}, RemoveMiner{ID: 1000, Purge: true}, RemoveStorage{Name: "a"}}},
		{name: "remove unknown miner", cmds: []Command{RemoveMiner{ID: 42}}, reject: "does not exist"},
		{name: "assignment generations grow", changed: 1,
			cmds: []Command{
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n1"}}},
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n1"}}}, // no change
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: ""}}},
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n2"}}},
			},
			check: func(t *testing.T, f *FSM) {
				as := f.Assignments()
				if len(as) != 1 || as[0].Node != "n2" || as[0].Generation != 3 {
					t.Fatalf("assignments %+v", as)
				}
			}},
		{name: "assignment since is kept with the owner", changed: 1,
			cmds: []Command{
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n1", Since: 100}}},
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 4}, Node: "n1", Since: 5}, {DeadlineKey: DeadlineKey{1000, 3}, Node: "n2", Since: 250}}},
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 4}, Node: "n1", Since: 7}}}, // same owner, new since
			},
			check: func(t *testing.T, f *FSM) {
				as := f.Assignments()
				want := []Assignment{
					{DeadlineKey: DeadlineKey{1000, 3}, Node: "n2", Generation: 2, Since: 250},
					{DeadlineKey: DeadlineKey{1000, 4}, Node: "n1", Generation: 1, Since: 7},
				}
				if !reflect.DeepEqual(as, want) {
					t.Fatalf("assignments\n got %+v\nwant %+v", as, want)
				}
			}},
		{name: "assignment same owner and since is no change", changed: 0,
			cmds: []Command{
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n1", Since: -3}}},
				SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n1", Since: -3}}},
			}},
		{name: "assignment deadline out of range", cmds: []Command{SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 48}, Node: "n"}}}}, reject: "deadline 48"},
		{name: "assignment unknown miner", cmds: []Command{SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{9, 1}, Node: "n"}}}}, reject: "t09 does not exist"},
		{name: "deadline records keep a week in order", changed: 1,
			cmds: func() []Command {
				var cs []Command
				for _, p := range []int64{5, 1, 3, 2, 4, 6, 7, 8, 9} {
					cs = append(cs, RecordDeadline{Record: DeadlineRecord{DeadlineKey: DeadlineKey{1000, 0}, PeriodStart: p * 2880, Outcome: OutcomeProven, Node: "n"}})
				}
				return cs
			}(),
			check: func(t *testing.T, f *FSM) {
				recs := f.Records(DeadlineKey{1000, 0})
				if len(recs) != recordsKept || recs[0].PeriodStart != 3*2880 || recs[len(recs)-1].PeriodStart != 9*2880 {
					t.Fatalf("records %+v", recs)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil)
			apply(t, f, base()...)
			r := apply(t, f, tt.cmds...)
			switch {
			case tt.reject != "":
				if !errors.Is(r.Err, ErrRejected) || !strings.Contains(r.Err.Error(), tt.reject) {
					t.Fatalf("err = %v, want rejection containing %q", r.Err, tt.reject)
				}
			case r.Err != nil:
				t.Fatalf("unexpected error %v", r.Err)
			case r.Changed != tt.changed:
				t.Fatalf("changed = %d, want %d", r.Changed, tt.changed)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	good := Encode(PutLocations{Locations: []SectorLocation{location(1, 2, "a", "b")}})
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty entry"},
		{"unknown type", []byte{0x42}, "unknown command type 66"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"short for its count", good[:len(good)-5], "exceeds remaining"},
		{"trailing", append(append([]byte{}, good...), 1, 2), "2 trailing bytes"},
		{"huge count", []byte{byte(TypePutLocations), 0xff, 0xff, 0xff, 0xff, 0x0f}, "exceeds remaining"},
		{"bad bool", []byte{byte(TypeRemoveMiner), 1, 7}, "invalid bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if c, err := Decode([]byte{byte(IgnoreIfUnknown | 0x33), 1, 2, 3}); c != nil || err != nil {
		t.Fatalf("optional unknown command: %v, %v", c, err)
	}
}

func TestUnknownCommandStopsNode(t *testing.T) {
	var fatal error
	f := New(func(err error) { fatal = err })
	defer func() {
		if recover() == nil || fatal == nil {
			t.Fatalf("an unknown command must stop the node (fatal=%v)", fatal)
		}
	}()
	f.Apply(&raft.Log{Type: raft.LogCommand, Index: 7, Data: []byte{0x33}})
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	cmds := []Command{
		SetClusterID{ID: "abc"},
		PutMiner{Miner: miner(77)},
		RemoveMiner{ID: 77, Purge: true},
		PutStorage{Instance: StorageInstance{Name: "n", Path: "/p", ReadOnly: true}},
		RemoveStorage{Name: "n"},
		PutLocations{Locations: []SectorLocation{location(1, 2, "a", "b"), {SectorID: SectorID{3, 4}, Sealed: "c", Cache: "d", Upgraded: true}}},
		DeleteLocations{IDs: []SectorID{{1, 2}, {1 << 40, 1 << 50}}},
		SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1, 47}, Node: "node-1", Since: 123456}, {DeadlineKey: DeadlineKey{2, 0}, Since: -1}}},
		SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1, 47}, Node: "node-1", Since: 9}}, Term: 1 << 33},
		RecordDeadline{Record: DeadlineRecord{DeadlineKey: DeadlineKey{1, 2}, PeriodStart: -5, Outcome: OutcomeFaulty, Node: "x", FaultySector: []uint64{3, 9}, DurationMS: 1234, Message: "m"}},
	}
	for _, c := range cmds {
		got, err := Decode(Encode(c))
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, c)
		}
	}
}

// An entry written before fencing existed (type 8, no term) must still
// decode from raft logs on disk, as an unfenced command.
func TestDecodeUnfencedAssignmentsFromOldLogs(t *testing.T) {
	old := []byte{byte(TypeSetAssignments), 1, 0xe8, 0x07, 5, 2, 'n', '1', 0x14}
	got, err := Decode(old)
	want := SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 5}, Node: "n1", Since: 10}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("old entry decoded to %+v, %v; want %+v", got, err, want)
	}
}

func TestFencedAssignments(t *testing.T) {
	assign := func(term uint64) SetAssignments {
		return SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{1000, 3}, Node: "n1"}}, Term: term}
	}
	tests := []struct {
		name      string
		cmd       SetAssignments
		entryTerm uint64
		fenced    bool
	}{
		{name: "decided in the entry's term", cmd: assign(5), entryTerm: 5},
		{name: "decided by a deposed leader, appended by the next", cmd: assign(5), entryTerm: 6, fenced: true},
		{name: "decided in a term the entry is older than", cmd: assign(7), entryTerm: 6, fenced: true},
		{name: "unfenced (written before fencing existed)", cmd: assign(0), entryTerm: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil)
			f.ApplyCommand(PutMiner{Miner: miner(1000)})
			r := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 3, Term: tt.entryTerm, Data: Encode(tt.cmd)}).(Result)
			owners := len(f.Assignments())
			if tt.fenced {
				if !errors.Is(r.Err, ErrFenced) || !errors.Is(r.Err, ErrRejected) || owners != 0 || f.Fenced() != 1 {
					t.Fatalf("stale write: err %v, %d assignments, fenced count %d; want ErrFenced, 0, 1", r.Err, owners, f.Fenced())
				}
				return
			}
			if r.Err != nil || owners != 1 || f.Fenced() != 0 {
				t.Fatalf("current write: err %v, %d assignments, fenced count %d; want nil, 1, 0", r.Err, owners, f.Fenced())
			}
		})
	}
}

// dump is every observable part of the state, for equality checks.
type dump struct {
	ClusterID   string
	Miners      []MinerSummary
	Storage     []StorageSummary
	Locations   []SectorLocation
	Assignments []Assignment
	Records     [][]DeadlineRecord
}

func dumpOf(f *FSM) dump {
	d := dump{ClusterID: f.ClusterID(), Miners: f.Miners(), Storage: f.StorageInstances(), Assignments: f.Assignments()}
	for _, m := range d.Miners {
		d.Locations = append(d.Locations, f.Locations(m.ID, 0, 0)...)
		for dl := uint8(0); dl < WdPoStDeadlines; dl++ {
			if r := f.Records(DeadlineKey{m.ID, dl}); len(r) > 0 {
				d.Records = append(d.Records, r)
			}
		}
	}
	return d
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := New(nil)
	apply(t, f, base()...)
	apply(t, f, PutStorage{Instance: StorageInstance{Name: "gone"}}, RemoveStorage{Name: "gone"}, PutStorage{Instance: StorageInstance{Name: "c"}})
	apply(t, f, PutMiner{Miner: miner(2000)})
	var locs []SectorLocation
	for n := uint64(0); n < 3*sectorsPerFrame+17; n++ {
		locs = append(locs, location(1000+1000*(n%2), n, []string{"a", "b", "c"}[n%3], "c"))
	}
	apply(t, f, PutLocations{Locations: locs},
		SetAssignments{Assignments: []Assignment{{DeadlineKey: DeadlineKey{2000, 5}, Node: "n1", Since: 9876}}},
		RecordDeadline{Record: DeadlineRecord{DeadlineKey: DeadlineKey{1000, 1}, PeriodStart: 2880, Outcome: OutcomeProven, FaultySector: []uint64{1}}},
		RecordDeadline{Record: DeadlineRecord{DeadlineKey: DeadlineKey{1000, 1}, PeriodStart: 0, Outcome: OutcomeFailed}},
	)
	snap := snapshotBytes(t, f)

	g := New(nil)
	apply(t, g, PutMiner{Miner: miner(9)}) // replaced entirely by Restore
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if want, got := dumpOf(f), dumpOf(g); !reflect.DeepEqual(want, got) {
		t.Fatalf("restored state differs")
	}
	// The restored FSM keeps working: storage indexes survived the hole.
	if r := apply(t, g, PutLocations{Locations: []SectorLocation{location(2000, 1, "c", "a")}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, g, RemoveStorage{Name: "b"}); !errors.Is(r.Err, ErrRejected) {
		t.Fatalf("refcounts not restored: %v", r.Err)
	}
}

func TestRestoreRejectsCorruptSnapshot(t *testing.T) {
	f := New(nil)
	apply(t, f, base()...)
	apply(t, f, PutLocations{Locations: []SectorLocation{location(1000, 1, "a", "b")}})
	snap := snapshotBytes(t, f)
	flipped := bytes.Clone(snap)
	flipped[len(flipped)/2] ^= 0x40
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"other file", []byte("hello world, not a snapshot"), "bad magic"},
		{"truncated", snap[:len(snap)-3], "unexpected EOF"},
		{"bit flip", flipped, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(nil)
			apply(t, g, PutMiner{Miner: miner(5)})
			err := g.Restore(io.NopCloser(bytes.NewReader(tt.in)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, ok := g.Miner(5); !ok {
				t.Fatal("a failed restore changed the state")
			}
		})
	}
}

// model is the obvious implementation the FSM must agree with.
type model struct {
	miners  map[uint64]bool
	storage map[string]bool
	locs    map[SectorID]SectorLocation
}

func (m *model) apply(c Command) bool {
	switch c := c.(type) {
	case PutMiner:
		m.miners[c.Miner.ID] = true
	case RemoveMiner:
		n := 0
		for id := range m.locs {
			if id.Miner == c.ID {
				n++
			}
		}
		if !m.miners[c.ID] || (n > 0 && !c.Purge) {
			return false
		}
		for id := range m.locs {
			if id.Miner == c.ID {
				delete(m.locs, id)
			}
		}
		delete(m.miners, c.ID)
	case PutStorage:
		m.storage[c.Instance.Name] = true
	case RemoveStorage:
		if !m.storage[c.Name] {
			return false
		}
		for _, l := range m.locs {
			if l.Sealed == c.Name || l.Cache == c.Name {
				return false
			}
		}
		delete(m.storage, c.Name)
	case PutLocations:
		for _, l := range c.Locations {
			if !m.miners[l.Miner] || !m.storage[l.Sealed] || !m.storage[l.Cache] {
				return false
			}
		}
		for _, l := range c.Locations {
			m.locs[l.SectorID] = l
		}
	case DeleteLocations:
		for _, id := range c.IDs {
			delete(m.locs, id)
		}
	}
	return true
}

func randomCommand(r *rand.Rand) Command {
	names := []string{"a", "b", "c"}
	id := func() SectorID { return SectorID{Miner: 1 + r.Uint64N(3), Number: r.Uint64N(20)} }
	switch r.IntN(10) {
	case 0:
		return PutMiner{Miner: miner(1 + r.Uint64N(3))}
	case 1:
		return RemoveMiner{ID: 1 + r.Uint64N(3), Purge: r.IntN(2) == 0}
	case 2:
		return PutStorage{Instance: StorageInstance{Name: names[r.IntN(3)]}}
	case 3:
		return RemoveStorage{Name: names[r.IntN(3)]}
	case 4, 5:
		ids := make([]SectorID, r.IntN(4))
		for i := range ids {
			ids[i] = id()
		}
		return DeleteLocations{IDs: ids}
	default:
		locs := make([]SectorLocation, 1+r.IntN(5))
		for i := range locs {
			s := id()
			locs[i] = location(s.Miner, s.Number, names[r.IntN(3)], names[r.IntN(3)])
		}
		return PutLocations{Locations: locs}
	}
}

// TestAgainstModel applies random command sequences to the FSM and to the
// model, checking they accept the same commands and hold the same
// locations, including across a snapshot and restore midway.
func TestAgainstModel(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		f := New(nil)
		m := &model{miners: map[uint64]bool{}, storage: map[string]bool{}, locs: map[SectorID]SectorLocation{}}
		for i := 0; i < 300; i++ {
			c := randomCommand(r)
			got := f.ApplyCommand(c)
			if want := m.apply(c); want != (got.Err == nil) {
				t.Fatalf("seed %d step %d: %T accepted by model=%v, fsm err=%v", seed, i, c, want, got.Err)
			}
			if i == 150 {
				g := New(nil)
				if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
					t.Fatal(err)
				}
				f = g
			}
		}
		total := 0
		for _, ms := range f.Miners() {
			for _, l := range f.Locations(ms.ID, 0, 0) {
				if !reflect.DeepEqual(m.locs[l.SectorID], l) {
					t.Fatalf("seed %d: %v = %+v, model %+v", seed, l.SectorID, l, m.locs[l.SectorID])
				}
				total++
			}
		}
		if total != len(m.locs) {
			t.Fatalf("seed %d: fsm holds %d locations, model %d", seed, total, len(m.locs))
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []Command{SetClusterID{ID: "x"}, PutLocations{Locations: []SectorLocation{location(1, 2, "a", "b")}}, RecordDeadline{Record: DeadlineRecord{FaultySector: []uint64{1}}}} {
		f.Add(Encode(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil || c == nil {
			return
		}
		// Varints have non-minimal forms, so compare commands, not bytes.
		again, err := Decode(Encode(c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoded %T does not decode to itself: %v", c, err)
		}
	})
}
