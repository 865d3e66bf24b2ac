package runner

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/vsm-project/vsm/internal/bftest"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
)

func TestPickSender(t *testing.T) {
	info := &fullnode.MinerInfo{Worker: fullnode.IDAddress(100), ControlAddresses: []address.Address{fullnode.IDAddress(101), fullnode.IDAddress(102)}}
	tests := []struct {
		want     address.Address
		got      uint64
		fallback bool
	}{
		{address.Address{}, 100, false}, // unset: the worker
		{fullnode.IDAddress(100), 100, false},
		{fullnode.IDAddress(102), 102, false},
		{fullnode.IDAddress(999), 100, true}, // the actor would refuse it: the worker
	}
	for _, tt := range tests {
		got, why := pickSender(tt.want, info)
		if (why != "") != tt.fallback || got != fullnode.IDAddress(tt.got) {
			t.Errorf("pickSender(%s) = %s, %q", tt.want, got, why)
		}
		if why != "" && !strings.Contains(why, "neither the worker") {
			t.Errorf("unclear reason %q", why)
		}
	}
}

func TestBatchDeclarations(t *testing.T) {
	decl := func(p uint64, from, n uint64) miner.FaultDeclaration {
		var set []uint64
		for i := range n {
			set = append(set, from+i)
		}
		return miner.FaultDeclaration{Deadline: 4, Partition: p, Sectors: bitfield.NewFromSet(set)}
	}
	tests := []struct {
		name       string
		decls      []miner.FaultDeclaration
		maxEntries int
		maxSectors uint64
		want       string // per message: partition:sectors
	}{
		{"fits", []miner.FaultDeclaration{decl(0, 0, 3), decl(1, 10, 2)}, 10, 100, "[[0:3 1:2]]"},
		{"entry limit", []miner.FaultDeclaration{decl(0, 0, 1), decl(1, 10, 1), decl(2, 20, 1)}, 2, 100, "[[0:1 1:1] [2:1]]"},
		{"sector limit splits a partition", []miner.FaultDeclaration{decl(0, 0, 3), decl(1, 10, 4)}, 10, 5, "[[0:3 1:2] [1:2]]"},
		{"actor limits", []miner.FaultDeclaration{decl(0, 0, 2349), decl(1, 5000, 2349)}, miner.DeclarationsMax, miner.AddressedSectorsMax, "[[0:2349 1:2349]]"},
		{"none", nil, 10, 10, "[]"},
	}
	for _, tt := range tests {
		got, err := batchDeclarations(tt.decls, tt.maxEntries, tt.maxSectors)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		total := uint64(0)
		for _, msg := range got {
			var ms []string
			var secs uint64
			for _, d := range msg {
				ms = append(ms, strings.TrimSpace(strings.Join([]string{uitoa(d.Partition), uitoa(bftest.Count(d.Sectors))}, ":")))
				secs += bftest.Count(d.Sectors)
			}
			if len(msg) > tt.maxEntries || secs > tt.maxSectors {
				t.Errorf("%s: a message of %d entries, %d sectors", tt.name, len(msg), secs)
			}
			total += secs
			parts = append(parts, "["+strings.Join(ms, " ")+"]")
		}
		if s := "[" + strings.Join(parts, " ") + "]"; s != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, s, tt.want)
		}
		var want uint64
		for _, d := range tt.decls {
			want += bftest.Count(d.Sectors)
		}
		if total != want {
			t.Errorf("%s: %d sectors declared, want %d", tt.name, total, want)
		}
	}
}

func uitoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestEstimationRefusal(t *testing.T) {
	tests := []struct {
		err  string
		code int64
		ok   bool
	}{
		{"GasEstimateMessageGas error: estimating gas used: message execution failed (exit=[ErrIllegalArgument(16)], vm error=[message failed with backtrace:\n00: f01000 (method 5) -- invalid post was submitted (16)\n (RetCode=16)])", 16, true},
		{"mpool push: message execution failed (exit=[SysErrForbidden(8)], revert reason=[none], vm error=[...])", 8, true},
		{"message execution failed (exit=[ExitCode(33)])", 33, true},
		{"message execution failed (exit=[18])", 18, true},
		{"exit=[Ok(0)]", 0, false},
		{"dial tcp 127.0.0.1:1234: connection refused", 0, false},
		{"mpool is full", 0, false},
	}
	for _, tt := range tests {
		code, ok := estimationRefusal(errors.New(tt.err))
		if ok != tt.ok || int64(code) != tt.code {
			t.Errorf("estimationRefusal(%q) = %d, %v; want %d, %v", tt.err, code, ok, tt.code, tt.ok)
		}
	}
	if _, ok := estimationRefusal(nil); ok {
		t.Error("nil is a refusal")
	}
}
