package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
)

// memStore applies commands straight to an FSM: the API's logic without raft.
type memStore struct {
	f        *fsm.FSM
	notReady error
}

func (m *memStore) FSM() *fsm.FSM    { return m.f }
func (m *memStore) ReadReady() error { return m.notReady }
func (m *memStore) Apply(_ context.Context, c fsm.Command) (int, error) {
	r := m.f.ApplyCommand(c)
	return r.Changed, r.Err
}
func (m *memStore) ConsistentRead(context.Context) error  { return &cluster.NotLeaderError{} }
func (m *memStore) Status() cluster.Status                { return cluster.Status{NodeID: "t"} }
func (m *memStore) SnapshotNow(ctx context.Context) error { return nil }

func newTestServer(t *testing.T) (*httptest.Server, *Auth, *memStore) {
	t.Helper()
	auth, err := NewAuth([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{f: fsm.New(nil)}
	mux := NewMux(auth, 1<<20, zap.NewNop())
	RegisterVSM(mux, st, "test")
	RegisterVenus(mux, st)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, auth, st
}

func TestEveryMethodIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	// rpc.Methods is the one list: Mux.Register refuses anything else, so
	// this covers the methods the daemon package registers too.
	for _, m := range Methods {
		i := bytes.Index(doc, []byte("### "+m.Name+"\n"))
		if i < 0 {
			t.Errorf("docs/api.md lacks a section for %s", m.Name)
			continue
		}
		if want := "Permission " + m.Perm.String() + "."; !bytes.Contains(doc[i:min(i+300, len(doc))], []byte(want)) {
			t.Errorf("docs/api.md: %s should say %q", m.Name, want)
		}
	}
	mux := NewMux(&Auth{secret: make([]byte, 16)}, 1, zap.NewNop())
	RegisterVSM(mux, &memStore{}, "")
	RegisterCluster(mux, nil, nil)
	RegisterVenus(mux, &memStore{})
	for name := range mux.Methods() {
		if _, ok := MethodPerm(name); !ok {
			t.Errorf("%s is served but not listed in Methods", name)
		}
	}
}

func TestRegisterRefusesUnlistedMethods(t *testing.T) {
	mux := NewMux(&Auth{secret: make([]byte, 16)}, 1, zap.NewNop())
	for _, c := range []struct {
		name string
		perm Perm
	}{{"VSM.NotListed", PermRead}, {MethodMinerAdd, PermRead}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%s, %s) did not refuse", c.name, c.perm)
				}
			}()
			mux.Register(c.name, c.perm, nil)
		}()
	}
}

func TestClientServerRoundTrip(t *testing.T) {
	srv, auth, _ := newTestServer(t)
	tok, _ := auth.NewToken(PermWrite)
	c := NewClient(srv.URL, tok)
	ctx := context.Background()
	if err := c.Call(ctx, MethodMinerAdd, nil, fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, MethodStorageAdd, nil, fsm.StorageInstance{Name: "s", Path: "/s"}); err != nil {
		t.Fatal(err)
	}
	loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: 3}, Sealed: "s", Cache: "s", Upgraded: true, SealProof: 5}
	loc.CommR[3] = 9
	var res struct{ Changed int }
	if err := c.Call(ctx, MethodSectorLocationPut, &res, []fsm.SectorLocation{loc}); err != nil || res.Changed != 1 {
		t.Fatalf("put: %v %+v", err, res)
	}
	var got fsm.SectorLocation
	if err := c.Call(ctx, MethodSectorLocationGet, &got, loc.SectorID); err != nil || got != loc {
		t.Fatalf("get: %v %+v", err, got)
	}
	err := c.Call(ctx, MethodSectorLocationGet, &got, fsm.SectorID{Miner: 1000, Number: 4})
	if !IsCode(err, CodeNotFound) {
		t.Fatalf("missing sector: %v", err)
	}
	err = c.Call(ctx, MethodSectorLocationPut, nil, []fsm.SectorLocation{{SectorID: fsm.SectorID{Miner: 1000, Number: 5}, Sealed: "x", Cache: "s"}})
	if !IsCode(err, CodeRejected) || !strings.Contains(err.Error(), `"x" does not exist`) {
		t.Fatalf("bad instance: %v", err)
	}
	err = c.Call(ctx, MethodSectorLocationGet, &got, loc.SectorID, true)
	if !IsCode(err, CodeNotLeader) {
		t.Fatalf("consistent read without leader: %v", err)
	}
	var n int
	if err := c.Call(ctx, MethodSectorLocationCount, &n, 1000); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	big := make([]fsm.SectorLocation, MaxBatch+1)
	if err := c.Call(ctx, MethodSectorLocationDelete, nil, big); !IsCode(err, CodeInvalidParams) && !IsCode(err, CodeTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
}

func TestReadsWaitForReplay(t *testing.T) {
	srv, auth, st := newTestServer(t)
	st.notReady = cluster.ErrCatchingUp
	tok, _ := auth.NewToken(PermRead)
	err := NewClient(srv.URL, tok).Call(context.Background(), MethodMinerList, nil)
	if !IsCode(err, CodeUnavailable) {
		t.Fatalf("read during replay: %v", err)
	}
}

func TestTokens(t *testing.T) {
	a, _ := NewAuth([]byte("0123456789abcdef"))
	b, _ := NewAuth([]byte("fedcba9876543210"))
	for _, p := range []Perm{PermRead, PermWrite, PermAdmin} {
		tok, err := a.NewToken(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := a.Verify(tok); err != nil || got != p {
			t.Fatalf("%s: got %s, %v", p, got, err)
		}
		if _, err := b.Verify(tok); err == nil {
			t.Fatalf("%s token verified with another secret", p)
		}
	}
	if _, err := NewAuth([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := ParsePerm("root"); err == nil {
		t.Fatal("unknown permission accepted")
	}
}

func TestGetIsNotAllowed(t *testing.T) {
	srv, _, _ := newTestServer(t)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error *Error }
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusMethodNotAllowed || body.Error == nil {
		t.Fatalf("GET: %d %+v", resp.StatusCode, body.Error)
	}
}

// TestVenusSectorIndexerFind answers in the original's shapes, field names
// included, as damocles' go-jsonrpc client decodes them.
func TestVenusSectorIndexerFind(t *testing.T) {
	srv, auth, st := newTestServer(t)
	ctx := context.Background()
	st.f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}})
	st.f.ApplyCommand(fsm.PutStorage{Instance: fsm.StorageInstance{Name: "s1", Path: "/s1"}})
	st.f.ApplyCommand(fsm.PutStorage{Instance: fsm.StorageInstance{Name: "s2", Path: "/s2"}})
	st.f.ApplyCommand(fsm.PutLocations{Locations: []fsm.SectorLocation{
		{SectorID: fsm.SectorID{Miner: 1000, Number: 1}, Sealed: "s1", Cache: "s2"},
		{SectorID: fsm.SectorID{Miner: 1000, Number: 2}, Sealed: "s2", Cache: "s2", Upgraded: true},
	}})
	tok, _ := auth.NewToken(PermRead)
	call := func(kind string, num uint64) string {
		var raw json.RawMessage
		if err := NewClient(srv.URL, tok).Call(ctx, MethodVenusSectorIndexerFind, &raw, kind, map[string]uint64{"Miner": 1000, "Number": num}); err != nil {
			return "error: " + err.Error()
		}
		return string(raw)
	}
	for _, c := range []struct {
		kind string
		num  uint64
		want string
	}{
		{"normal", 1, `{"Found":true,"Instance":{"SealedFile":"s1","CacheDir":"s2"}}`},
		{"upgrade", 1, `{"Found":false,"Instance":{"SealedFile":"","CacheDir":""}}`},
		{"upgrade", 2, `{"Found":true,"Instance":{"SealedFile":"s2","CacheDir":"s2"}}`},
		{"normal", 9, `{"Found":false,"Instance":{"SealedFile":"","CacheDir":""}}`},
	} {
		if got := call(c.kind, c.num); got != c.want {
			t.Errorf("%s %d: %s, want %s", c.kind, c.num, got, c.want)
		}
	}
	if got := call("sealed", 1); !strings.Contains(got, "not supported") {
		t.Errorf("unknown kind: %s", got)
	}
	if err := NewClient(srv.URL, "").Call(ctx, MethodVenusSectorIndexerFind, nil, "normal", map[string]uint64{"Miner": 1000, "Number": 1}); err == nil {
		t.Error("Venus.SectorIndexerFind answered without a token")
	}
}
