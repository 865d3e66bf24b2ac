package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vsm-project/vsm/fsm"
)

func TestReadJSONL(t *testing.T) {
	in := `# comment
{"miner":"t01000","number":1,"sealed":"a","cache":"b","upgraded":true,"proof":8,"commr":"` + strings.Repeat("0f", 32) + `"}

{"miner":1001,"number":2,"sealed":"a","cache":"a"}
`
	locs, err := ReadJSONL(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(locs) != 2 || locs[0].Miner != 1000 || !locs[0].Upgraded || locs[0].SealProof != 8 || locs[0].CommR[0] != 0x0f || locs[1].Miner != 1001 || locs[1].Number != 2 {
		t.Fatalf("parsed %+v", locs)
	}
}

func TestReadErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, in, want string
		csv            bool
	}{
		{name: "jsonl missing number", in: `{"miner":1,"sealed":"a","cache":"a"}`, want: `line 1: "number" is missing`},
		{name: "jsonl bad miner", in: "{\"miner\":1,\"number\":1,\"sealed\":\"a\",\"cache\":\"a\"}\n{\"miner\":\"t3abc\",\"number\":1}", want: "line 2: miner \"t3abc\""},
		{name: "jsonl unknown field", in: `{"miner":1,"number":1,"sealed":"a","cache":"a","x":1}`, want: `unknown field "x"`},
		{name: "csv bad number", csv: true, in: "miner,number,sealed,cache\n1000,x,a,a\n", want: `line 2: number "x"`},
		{name: "csv unknown column", csv: true, in: "miner,number,sealed,cache,size\n", want: `unknown column "size"`},
		{name: "csv bad upgraded", csv: true, in: "miner,number,sealed,cache,upgraded\n1000,1,a,a,maybe\n", want: "upgraded"},
		{name: "csv short commr", csv: true, in: "miner,number,sealed,cache,commr\n1000,1,a,a,abcd\n", want: "64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.csv {
				_, err = ReadCSV(strings.NewReader(tt.in))
			} else {
				_, err = ReadJSONL(strings.NewReader(tt.in))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReadCSVAnyColumnOrder(t *testing.T) {
	locs, err := ReadCSV(strings.NewReader("cache,number,miner,sealed\nb,7,f01000,a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(locs) != 1 || locs[0].Miner != 1000 || locs[0].Number != 7 || locs[0].Sealed != "a" || locs[0].Cache != "b" {
		t.Fatalf("parsed %+v", locs)
	}
}

func locs(n int) []fsm.SectorLocation {
	out := make([]fsm.SectorLocation, n)
	for i := range out {
		out[i] = fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1, Number: uint64(i)}}
	}
	return out
}

// countingPut counts how often each sector number is put; mu guards seen.
func countingPut() (put Putter, seen map[uint64]int, mu *sync.Mutex) {
	mu, seen = &sync.Mutex{}, map[uint64]int{}
	put = func(_ context.Context, b []fsm.SectorLocation) error {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range b {
			seen[l.Number]++
		}
		return nil
	}
	return put, seen, mu
}

func TestSendDeliversEveryRecordOnce(t *testing.T) {
	put, seen, mu := countingPut()
	var last int
	done, err := Send(context.Background(), put, locs(1003), 10, 3, func(d int) {
		mu.Lock()
		last = max(last, d)
		mu.Unlock()
	})
	if err != nil || done != 1003 || len(seen) != 1003 || last != 1003 {
		t.Fatalf("done %d err %v seen %d progress %d", done, err, len(seen), last)
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("record %d sent %d times", n, c)
		}
	}
	if done, err := Send(context.Background(), put, locs(5), 2, 1, nil); err != nil || done != 5 {
		t.Fatalf("without progress: done %d err %v", done, err)
	}
}

func TestSendStopsAtFirstFailure(t *testing.T) {
	boom := errors.New("rejected")
	put := func(_ context.Context, b []fsm.SectorLocation) error {
		if b[0].Number == 40 {
			return boom
		}
		return nil
	}
	done, err := Send(context.Background(), put, locs(100), 10, 1, nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "records 41-50") || done != 40 {
		t.Fatalf("done %d err %v", done, err)
	}
}

// TestReadJSONLStrict (issue 11 item 3): a line with two objects used to
// import only the first, trailing garbage was accepted and a repeated key
// took the last value. Each must stop the whole import.
func TestReadJSONLStrict(t *testing.T) {
	good := `{"miner":1000,"number":1,"sealed":"a","cache":"a"}`
	tests := []struct{ name, in, want string }{
		{"two objects on a line", good + `{"miner":1000,"number":2,"sealed":"a","cache":"a"}`, "line 2: unexpected data after the object"},
		{"two objects with a space", good + ` {"miner":1000,"number":2,"sealed":"a","cache":"a"}`, "line 2: unexpected data after the object"},
		{"trailing garbage", good + ` xyz`, "line 2: unexpected data after the object"},
		{"trailing comma", good + `,`, "line 2: unexpected data after the object"},
		{"duplicate key", `{"miner":1000,"number":1,"number":2,"sealed":"a","cache":"a"}`, `line 2: key "number" appears twice`},
		{"duplicate key, same value", `{"miner":1000,"number":1,"sealed":"a","sealed":"a","cache":"a"}`, `key "sealed" appears twice`},
		{"not an object", `[1,2]`, "want one JSON object per line"},
		{"null", `null`, "want one JSON object per line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locs, err := ReadJSONL(strings.NewReader(good + "\n" + tt.in + "\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %d locations, err %v; want an error containing %q", len(locs), err, tt.want)
			}
		})
	}
	if _, err := ReadCSV(strings.NewReader("miner,number,sealed,cache,number\n1000,1,a,a,2\n")); err == nil || !strings.Contains(err.Error(), `column "number" appears twice`) {
		t.Fatalf("csv duplicate column: %v", err)
	}
}

// TestSendReportsExactlyWhatWasStored (issue 11 item 3): with batches in
// flight in parallel, a failure used to cancel the others (whose outcome
// was then unknown) and report only a count. The error must list the
// stored, failed and unsent records exactly.
func TestSendReportsExactlyWhatWasStored(t *testing.T) {
	boom := errors.New("rejected: storage instance \"nope\" does not exist")
	release := make(chan struct{})
	var mu sync.Mutex
	got := map[uint64]bool{}
	put := func(ctx context.Context, b []fsm.SectorLocation) error {
		switch b[0].Number {
		case 20: // fails while 0-9 and 10-19 are in flight
			return boom
		case 0, 10:
			<-release // still in flight when 20-29 fails
		}
		mu.Lock()
		for _, l := range b {
			got[l.Number] = true
		}
		mu.Unlock()
		return ctx.Err()
	}
	go func() { time.Sleep(100 * time.Millisecond); close(release) }()
	done, err := Send(context.Background(), put, locs(100), 10, 3, nil)
	var pe *PartialError
	if !errors.As(err, &pe) || !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if done != len(got) {
		t.Fatalf("reported %d stored, the node has %d", done, len(got))
	}
	msg := err.Error()
	for _, want := range []string{"20 of 100 records stored (records 1-20)", "records 21-30 failed: rejected", "records 31-100 were not sent"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
}

func jsonlLines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"miner":1000,"number":%d,"sealed":"a","cache":"a"}`+"\n", i)
	}
	return b.String()
}

// TestSendFromStreams: records read as they are sent arrive once each; an
// input that no longer matches what the first pass validated (shorter, no
// longer parsing, or reading differently) stops the import before the
// batch that differs, with an account of what was stored.
func TestSendFromStreams(t *testing.T) {
	validated := jsonlLines(25)
	tests := []struct {
		name, in  string
		wantDone  int
		wantError string
	}{
		{name: "whole", in: validated, wantDone: 25},
		{name: "shorter than counted", in: jsonlLines(12), wantDone: 10, wantError: "the input ended at record 12, but the first pass counted 25"},
		{name: "no longer parses", in: jsonlLines(12) + "{\n", wantDone: 10, wantError: "line 13"},
		{name: "reads differently", in: strings.Replace(validated, `"number":13,`, `"number":1300,`, 1), wantDone: 10, wantError: "records 11-15 differ from what the first pass validated"},
	}
	plan, err := Validate(NewJSONLReader(strings.NewReader(validated)), 5)
	if err != nil || plan.Total != 25 {
		t.Fatalf("first pass: %+v %v", plan, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put, seen, _ := countingPut()
			second, err := Reread(strings.NewReader(tt.in), "jsonl")
			if err != nil {
				t.Fatal(err)
			}
			done, err := SendFrom(context.Background(), put, second, plan, 1, nil)
			if done != tt.wantDone || len(seen) != tt.wantDone {
				t.Fatalf("done %d, %d distinct records put, want %d", done, len(seen), tt.wantDone)
			}
			if tt.wantError == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantError) || !strings.Contains(err.Error(), "records 1-10") {
				t.Fatalf("err = %v, want %q and the stored records 1-10", err, tt.wantError)
			}
		})
	}
}

func TestValidateCountsWithoutHolding(t *testing.T) {
	p, err := Validate(NewJSONLReader(strings.NewReader("# c\n\n"+jsonlLines(7))), 3)
	if err != nil || p.Total != 7 || len(p.sums) != 3 {
		t.Fatalf("plan %+v err %v", p, err)
	}
	if _, err := Validate(NewCSVReader(strings.NewReader("miner,number,sealed,cache\n1000,1,a,a\n1000,x,a,a\n")), 3); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v, want line 3", err)
	}
}
