package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestInterspersedFlags(t *testing.T) {
	app := newApp()
	tests := []struct {
		in, want []string
	}{
		{
			in:   []string{"vsm", "--home", "/h", "miner", "add", "t01000", "--sector-size", "32GiB"},
			want: []string{"vsm", "--home", "/h", "miner", "add", "--sector-size", "32GiB", "--", "t01000"},
		},
		{
			in:   []string{"vsm", "miner", "remove", "t01000", "--purge", "--api", "x:1"},
			want: []string{"vsm", "miner", "remove", "--purge", "--api", "x:1", "--", "t01000"},
		},
		{
			in:   []string{"vsm", "miner", "add", "--sector-size=2KiB", "t01000"},
			want: []string{"vsm", "miner", "add", "--sector-size=2KiB", "--", "t01000"},
		},
		{ // no positional: unchanged
			in:   []string{"vsm", "miner", "list", "--json"},
			want: []string{"vsm", "miner", "list", "--json"},
		},
		{ // not a leaf: left alone
			in:   []string{"vsm", "miner"},
			want: []string{"vsm", "miner"},
		},
		{ // an unknown command is left for the CLI to report
			in:   []string{"vsm", "frobnicate", "x", "--y"},
			want: []string{"vsm", "frobnicate", "x", "--y"},
		},
	}
	for _, tt := range tests {
		if got := interspersed(app, tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("interspersed(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestParseActorTakesEveryForm: --miner takes t01000, f01000 and 1000.
func TestParseActorTakesEveryForm(t *testing.T) {
	for _, s := range []string{"t01000", "f01000", "1000"} {
		if id, err := parseActor(s); err != nil || id != 1000 {
			t.Errorf("parseActor(%q) = %d, %v; want 1000", s, id, err)
		}
	}
	if _, err := parseActor("t3abc"); err == nil || !strings.Contains(err.Error(), "t01000, f01000 or 1000") {
		t.Errorf("parseActor(t3abc): %v", err)
	}
}
