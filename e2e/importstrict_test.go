package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportStrictLines (issue 11 item 3) runs the real CLI against a real
// node: a line holding two objects, trailing garbage or a repeated key
// used to import (partly) and exit 0. Now the whole import stops before
// anything is written; and when the node refuses a batch, the message says
// exactly which records were stored.
func TestImportStrictLines(t *testing.T) {
	n := startSingle(t)
	n.MustRun("miner", "add", "t01000", "--sector-size", "2KiB")
	n.MustRun("storage", "add", "s", "--path", "/mnt/s")
	rec := func(num, inst string) string {
		return `{"miner":1000,"number":` + num + `,"sealed":"` + inst + `","cache":"s"}`
	}
	dir := t.TempDir()
	for _, tt := range []struct{ name, content, want string }{
		{"two objects", rec("1", "s") + "\n" + rec("2", "s") + rec("3", "s") + "\n", "line 2: unexpected data after the object"},
		{"trailing garbage", rec("1", "s") + " }\n", "line 1: unexpected data after the object"},
		{"duplicate key", `{"miner":1000,"number":1,"number":2,"sealed":"s","cache":"s"}` + "\n", `line 1: key "number" appears twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".jsonl")
			if err := os.WriteFile(file, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, err := n.Run("sector", "location", "import", "--file", file, "--quiet")
			if err == nil || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "nothing was imported") {
				t.Fatalf("import: %v, stderr %q, want %q", err, errOut, tt.want)
			}
			if c := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", "t01000", "--count")); c != "0" {
				t.Fatalf("a refused import stored %s locations", c)
			}
		})
	}

	t.Run("partial import names the stored records", func(t *testing.T) {
		var b strings.Builder
		for i := 1; i <= 10; i++ {
			inst := "s"
			if i == 7 {
				inst = "nope"
			}
			b.WriteString(rec(strconv.Itoa(i), inst) + "\n")
		}
		file := filepath.Join(dir, "partial.jsonl")
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, err := n.Run("sector", "location", "import", "--file", file, "--quiet", "--batch", "3", "--parallel", "1")
		for _, want := range []string{"6 of 10 records stored (records 1-6)", "records 7-9 failed", `"nope" does not exist`, "record 10 was not sent"} {
			if err == nil || !strings.Contains(errOut, want) {
				t.Fatalf("import: %v, stderr %q lacks %q", err, errOut, want)
			}
		}
		if c := strings.TrimSpace(n.MustRun("sector", "location", "list", "--miner", "t01000", "--count")); c != "6" {
			t.Fatalf("the node holds %s locations, the message said 6", c)
		}
	})
}
