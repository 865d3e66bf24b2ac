package sectorfile

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{"2KiB", Size2KiB, ""},
		{"8MiB", Size8MiB, ""},
		{"512MiB", Size512MiB, ""},
		{"32GiB", Size32GiB, ""},
		{"2048", Size2KiB, ""},
		{"3KiB", 0, "not a Filecoin sector size"},
		{"2kb", 0, "cannot parse"},
		{"", 0, "cannot parse"},
		{"18446744073709551615GiB", 0, "not a Filecoin sector size"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if back, err := ParseSize(FormatSize(got)); err != nil || back != got {
			t.Errorf("FormatSize round trip of %d: %q -> %d, %v", got, FormatSize(got), back, err)
		}
	}
}

func TestPoStProofNames(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"StackedDrgWindow2KiBV1_2", "StackedDrgWindow2KiBV1_2", false},
		{"StackedDrgWindow2KiBV1_1", "StackedDrgWindow2KiBV1_2", false},
		{"StackedDrgWindow32GiBV1", "StackedDrgWindow32GiBV1_2", false},
		{"13", "StackedDrgWindow32GiBV1_2", false},
		{"8", "StackedDrgWindow32GiBV1_2", false},
		{"StackedDrgWindow2KiB", "", true},
		{"StackedDrgWinning2KiBV1", "StackedDrgWinning2KiBV1", false},
		{"StackedDrgWinning2KiBV1_1", "", true},
		{"4", "StackedDrgWinning64GiBV1", false},
		{"15", "", true},
	}
	for _, tt := range tests {
		got, err := PoStProofByName(tt.in)
		if (err != nil) != tt.wantErr || got.Name != tt.want {
			t.Errorf("PoStProofByName(%q) = %q, %v; want %q, err=%v", tt.in, got.Name, err, tt.want, tt.wantErr)
		}
	}
	if w, _ := PoStProofByName("StackedDrgWinning2KiBV1"); !w.Winning || w.Challenges() != 66 || w.ChainID != 0 {
		t.Errorf("winning 2KiB = %+v, challenges %d", w, w.Challenges())
	}
	if w, _ := PoStProofByName("StackedDrgWindow2KiBV1_2"); w.Winning || w.Challenges() != 10 {
		t.Errorf("window 2KiB = %+v, challenges %d", w, w.Challenges())
	}
	for seal := int64(0); seal < 20; seal++ {
		p, err := PoStProofFromSeal(seal)
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{Size2KiB, Size8MiB, Size512MiB, Size32GiB, Size64GiB}[seal%5]; p.SectorSize != want {
			t.Errorf("seal proof %d -> size %d, want %d", seal, p.SectorSize, want)
		}
	}
	if p, _ := PoStProofForSize(Size32GiB); p.PartitionSectors != 2349 {
		t.Errorf("32GiB partition = %d, want 2349", p.PartitionSectors)
	}
}

func TestCreateAndTree(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    CreateOptions
		wantErr string
	}{
		{"2KiB", CreateOptions{Miner: 1000, Number: 1, Size: Size2KiB}, ""},
		{"2KiB upgraded random", CreateOptions{Miner: 1000, Number: 2, Size: Size2KiB, Upgraded: true, Random: true}, ""},
		{"8MiB", CreateOptions{Miner: 1000, Number: 3, Size: Size8MiB}, ""},
		{"32GiB refused", CreateOptions{Miner: 1000, Number: 4, Size: Size32GiB}, "cannot be written here"},
		{"bad size", CreateOptions{Miner: 1000, Number: 5, Size: 3000}, "no WindowPoSt proof type"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir = dir
			s, err := Create(ctx, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Create error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTree(t, s)
			if _, err := Create(ctx, tt.opts); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("second Create error = %v, want 'already exists'", err)
			}
		})
	}
}

// checkTree recomputes the whole tree from the replica and compares it to the
// file, and the commitments to p_aux.
func checkTree(t *testing.T, s Sector) {
	t.Helper()
	geo, err := GeometryFor(s.Size)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := os.ReadFile(s.Paths.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := os.ReadFile(TreeRLastPath(s.Paths.Cache))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(replica)) != s.Size || int64(len(tree)) != geo.TreeFileSize() {
		t.Fatalf("sizes: replica %d tree %d", len(replica), len(tree))
	}
	level := make([]Node, geo.Leaves)
	for i := range level {
		copy(level[i][:], replica[i*NodeSize:])
		if level[i][31]&0xc0 != 0 {
			t.Fatalf("leaf %d is not a field element", i)
		}
	}
	for l := 1; l <= geo.Depth; l++ {
		next := make([]Node, len(level)/2)
		for i := range next {
			next[i] = HashPair(&level[2*i], &level[2*i+1])
			off := geo.NodeOffset(l, uint64(i))
			if Node(tree[off:off+NodeSize]) != next[i] {
				t.Fatalf("tree node level %d index %d differs from recomputation", l, i)
			}
		}
		level = next
	}
	aux, err := ReadPAux(s.Paths.Cache)
	if err != nil {
		t.Fatal(err)
	}
	if aux.CommRLast != level[0] || aux.CommC != s.CommC || CommR(aux.CommC, aux.CommRLast) != s.CommR {
		t.Fatal("p_aux commitments do not match the tree root / returned comm_r")
	}
}

func TestCreateDeterministic(t *testing.T) {
	ctx := context.Background()
	a, err := Create(ctx, CreateOptions{Miner: 7, Number: 9, Size: Size2KiB, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(ctx, CreateOptions{Miner: 7, Number: 9, Size: Size2KiB, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Create(ctx, CreateOptions{Miner: 7, Number: 10, Size: Size2KiB, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if a.CommR != b.CommR {
		t.Error("same miner and number gave different comm_r")
	}
	if a.CommR == c.CommR {
		t.Error("different sector numbers gave the same comm_r")
	}
}

func TestSealedCID(t *testing.T) {
	var c Node
	for i := range c {
		c[i] = byte(i * 7)
	}
	s := SealedCID(c)
	if !strings.HasPrefix(s, "bagboea4b5abc") {
		t.Errorf("SealedCID = %s, want the bagboea4b5abc prefix Lotus shows", s)
	}
	back, err := ParseSealedCID(s)
	if err != nil || back != c {
		t.Fatalf("ParseSealedCID(%s) = %x, %v", s, back, err)
	}
	for _, bad := range []string{"", "Qm123", "bafy2bzaceaaa", s[:len(s)-2]} {
		if _, err := ParseSealedCID(bad); err == nil {
			t.Errorf("ParseSealedCID(%q) accepted", bad)
		}
	}
}
