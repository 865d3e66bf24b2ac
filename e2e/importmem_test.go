package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vsm-project/vsm/internal/harness"
)

// writeLocationsFile writes expectedLocation(0..n-1) as JSON lines.
func writeLocationsFile(t testing.TB, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		l := expectedLocation(i)
		fmt.Fprintf(w, `{"miner":"t0%d","number":%d,"sealed":%q,"cache":%q,"upgraded":%v,"proof":%d,"commr":"%s"}`+"\n",
			l.Miner, l.Number, l.Sealed, l.Cache, l.Upgraded, l.SealProof, hex.EncodeToString(l.CommR[:]))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// prepareImportNode adds the miners and storage expectedLocation names.
func prepareImportNode(n *harness.Node) {
	n.MustRun("miner", "add", "t01000", "--sector-size", "32GiB")
	n.MustRun("miner", "add", "t01001", "--sector-size", "32GiB")
	n.MustRun("storage", "add", "store-a", "--path", "/mnt/a")
	n.MustRun("storage", "add", "store-b", "--path", "/mnt/b")
}

// importPeakMB runs the real CLI's import of file (or of stdin when file
// is "-") and returns the client process's peak resident memory in MB.
func importPeakMB(t testing.TB, n *harness.Node, file string, stdin *os.File) float64 {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the client's peak memory is read from /proc")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out, errOut, peak, err := n.RunPeak(ctx, stdin, "sector", "location", "import", "--file", file, "--quiet")
	if err != nil {
		t.Fatalf("import %s: %v\nstdout %s\nstderr %s", file, err, out, errOut)
	}
	if peak == 0 {
		t.Fatal("no VmHWM read from /proc while the import ran")
	}
	return float64(peak) / (1 << 20)
}

// TestImportClientMemoryBounded (issue 11 item 10): the CLI parsed the
// whole file into memory before sending, 330-440 MB per million lines. It
// now validates in one streaming pass and sends in a second, so its peak
// memory stays under 100 MB whatever the file's size. 300,000 lines
// (about 50 MB of JSON, which took the old client to about 140 MB) through the
// real binary into a real daemon (make bench imports 10 million); then
// the same from standard input, which is spooled to a temporary file.
func TestImportClientMemoryBounded(t *testing.T) {
	const total = 300_000
	n := startSingle(t)
	prepareImportNode(n)
	file := filepath.Join(t.TempDir(), "locs.jsonl")
	writeLocationsFile(t, file, total)

	if peak := importPeakMB(t, n, file, nil); peak >= 100 {
		t.Fatalf("importing %d lines took the client to %.0f MB resident, want under 100 MB", total, peak)
	} else {
		t.Logf("client peak RSS importing %d lines: %.0f MB", total, peak)
	}
	for _, miner := range []string{"t01000", "t01001"} {
		if c := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", miner, "--count")); c != fmt.Sprint(total/2) {
			t.Fatalf("%s holds %s locations after the import, want %d", miner, c, total/2)
		}
	}
	var got struct{ Sealed, Cache string }
	if err := n.Client(n.Token()).Call(t.Context(), "VSM.SectorLocationGet", &got, expectedLocation(total-1).SectorID); err != nil || got.Sealed != expectedLocation(total-1).Sealed {
		t.Fatalf("last record: %+v %v", got, err)
	}

	small := filepath.Join(t.TempDir(), "small.jsonl")
	writeLocationsFile(t, small, 1000)
	stdin, err := os.Open(small)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	n.MustRun("sector", "location", "delete", "--miner", "t01000", "--number", "0")
	importPeakMB(t, n, "-", stdin)
	if err := n.Client(n.Token()).Call(t.Context(), "VSM.SectorLocationGet", &got, expectedLocation(0).SectorID); err != nil {
		t.Fatalf("a record given on standard input was not imported: %v", err)
	}
}
