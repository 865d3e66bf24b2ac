package prover

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ConfigFileName is the name of the ext-prover configuration file inside a
// node's config directory (or --conf-dir).
const ConfigFileName = "ext-prover.cfg"

// Defaults applied to keys a [[WdPost]] block leaves out.
const (
	DefaultConcurrent       = 1
	DefaultWeight           = 1
	DefaultReadyTimeoutSecs = 5
	// A check request's vanilla reads of 256 sectors (the limit scales with
	// the request's sectors, see CheckTimeoutUnit) take seconds on healthy
	// storage; two minutes leaves room for slow disks and still lets `vsm
	// proving check` retry on another child long before an operator gives
	// up on it.
	DefaultCheckTimeoutSecs = 120
	// A WindowPoSt request takes minutes on a GPU (about 4 per 32 GiB
	// partition SNARK); a deadline's window is 30 minutes.
	DefaultProveTimeoutSecs = 1800
)

// Block kinds of ext-prover.cfg: [[WdPost]] children prove WindowPoSt
// (and WinningPoSt when there is no [[WinPost]] block), [[WinPost]]
// children prove only WinningPoSt. The original keeps them apart so that a
// long WindowPoSt never holds the slot a 30-second-critical winning proof
// needs.
const (
	KindWdPost  = "WdPost"
	KindWinPost = "WinPost"
)

// defaultArgs are the child arguments used when a block has no Args: the
// running vsm binary serving the protocol with the kind's ready line.
func defaultArgs(kind string) []string {
	if kind == KindWinPost {
		return []string{"winpost"}
	}
	return []string{"wdpost"}
}

// DefaultConfigText is the commented ext-prover.cfg that `vsm daemon init`
// writes. Every key is commented out, so the file parses to one child with
// all defaults (see LoadConfig).
const DefaultConfigText = `# ext-prover.cfg: the WindowPoSt child processes this node starts with
# "vsm daemon run --ext-prover". One [[WdPost]] block starts one child process;
# the usual layout is one block per GPU. With no block at all (as in this file,
# where everything is commented out) the node starts a single child with the
# defaults shown below.
#
# The children speak the damocles vc-processors protocol (newline-delimited
# JSON on stdin/stdout, see docs/ext-prover.md), so a filecoin-ffi prover such
# as "damocles-worker processor window_post" or vsm's own ffi prover can be
# plugged in with Bin/Args unchanged.

#[[WdPost]]
# Bin is the program to run. A bare name is looked up in PATH. Leave it out to
# run the vsm binary that is running the node.
#Bin = "vsm"
#
# Args are the child's arguments. Default: ["wdpost"] (the built-in engine).
#Args = ["wdpost"]
#
# Concurrent is how many requests (partitions) the child may work on at once.
#Concurrent = 1
#
# Weight is this child's share of dispatch among the children that have a
# free Concurrent slot: a child with Weight 2 gets twice the work of one with
# Weight 1.
#Weight = 1
#
# ReadyTimeoutSecs is how long the child may take to print its ready line
# ("window_post processor ready") before the start counts as failed.
#ReadyTimeoutSecs = 5
#
# CheckTimeoutSecs bounds a fault-check request (vanilla reads, sent by "vsm
# proving check" and before each deadline), per 256 sectors it checks. A child
# that has not answered by then is considered hung: it is killed and
# restarted, and the request is retried on another child.
#CheckTimeoutSecs = 120
#
# ProveTimeoutSecs bounds one WindowPoSt (or WinningPoSt) request, the same
# way. Keep it above the slowest proof of this GPU.
#ProveTimeoutSecs = 1800
#
# Envs are extra environment variables for this child, on top of the node's
# own environment.
#[WdPost.Envs]
#KEY = "VAL"

# Example: one child per GPU, each with its own GPU and its own TMPDIR (the
# proofs library keeps its GPU lock files there, so the children do not wait
# on each other).
#
#[[WdPost]]
#Bin = "/usr/local/bin/vsm-ffi-prover"
#Args = ["wdpost"]
#Concurrent = 1
#Weight = 1
#[WdPost.Envs]
#CUDA_VISIBLE_DEVICES = "0"
#TMPDIR = "/var/tmp/vsm-gpu0"
#
#[[WdPost]]
#Bin = "/usr/local/bin/vsm-ffi-prover"
#Args = ["wdpost"]
#Concurrent = 1
#Weight = 1
#[WdPost.Envs]
#CUDA_VISIBLE_DEVICES = "1"
#TMPDIR = "/var/tmp/vsm-gpu1"

# [[WinPost]] blocks (same keys as [[WdPost]]; Args default ["winpost"], ready
# line "winning_post processor ready") start children that prove only the
# WinningPoSt asked for by sophon-gateway ("vsm daemon run --miner"). Without
# any, WinningPoSt goes to the [[WdPost]] children, where it may wait behind a
# long WindowPoSt: give it a GPU of its own when the node mines.
#
#[[WinPost]]
#Bin = "/usr/local/bin/vsm-ffi-prover"
#Args = ["winpost"]
#[WinPost.Envs]
#CUDA_VISIBLE_DEVICES = "2"
#TMPDIR = "/var/tmp/vsm-gpu2"
`

// Config is a parsed ext-prover.cfg.
type Config struct {
	// WdPost holds one entry per WindowPoSt child process, in file order.
	// LoadConfig always returns at least one entry.
	WdPost []ProcessorConfig
	// WinPost holds one entry per WinningPoSt-only child process; it may
	// be empty.
	WinPost []ProcessorConfig
}

// ProcessorConfig describes one child process ([[WdPost]] block), with
// defaults already applied.
type ProcessorConfig struct {
	// Bin is the program; empty means the running vsm binary, resolved when
	// the child starts (os.Executable).
	Bin string
	// Args are the program's arguments.
	Args []string
	// Concurrent is the number of requests the child may hold at once (>= 1).
	Concurrent int
	// Weight is the child's dispatch share (>= 1).
	Weight int
	// ReadyTimeoutSecs bounds the wait for the ready line (>= 1).
	ReadyTimeoutSecs int
	// CheckTimeoutSecs and ProveTimeoutSecs bound one check and one proving
	// request on this child; a child that overruns is killed and restarted.
	// 0 means the default (for configurations built by hand).
	CheckTimeoutSecs, ProveTimeoutSecs int
	// Envs are extra environment variables for the child.
	Envs map[string]string
}

// LoadConfig reads and validates the ext-prover.cfg at path.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read ext-prover config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("ext-prover config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses the text of an ext-prover.cfg. A file without any
// [[WdPost]] block yields one block with every default, so that the commented
// file written by daemon init starts the built-in prover. Unknown keys are an
// error, because a misspelt key (e.g. "Concurent") would otherwise be
// silently ignored and the child run with a default the operator did not
// want.
//
// The file is decoded into generic maps and checked key by key (rather than
// decoded straight into a struct) so that every error names the block index
// and the key, which the TOML library's type errors do not.
func ParseConfig(data []byte) (Config, error) {
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return Config{}, fmt.Errorf("parse TOML: %w", err)
	}
	blocks := map[string][]map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		v := doc[k]
		if k != KindWdPost && k != KindWinPost {
			return Config{}, fmt.Errorf("unknown top-level key %q (only [[WdPost]] and [[WinPost]] blocks are allowed)", k)
		}
		list, ok := v.([]map[string]any)
		if !ok {
			return Config{}, fmt.Errorf("%s must be written as [[%s]] blocks (an array of tables), got %s", k, k, tomlType(v))
		}
		blocks[k] = list
	}
	if len(blocks[KindWdPost]) == 0 {
		blocks[KindWdPost] = []map[string]any{{}}
	}
	var cfg Config
	for _, kind := range []string{KindWdPost, KindWinPost} {
		list := blocks[kind]
		for i, b := range list {
			pc, err := resolveBlock(kind, i, len(list), b)
			if err != nil {
				return Config{}, err
			}
			if kind == KindWdPost {
				cfg.WdPost = append(cfg.WdPost, pc)
			} else {
				cfg.WinPost = append(cfg.WinPost, pc)
			}
		}
	}
	return cfg, nil
}

const validKeys = "Bin, Args, Concurrent, Weight, ReadyTimeoutSecs, CheckTimeoutSecs, ProveTimeoutSecs, Envs"

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

func resolveBlock(kind string, idx, total int, b map[string]any) (ProcessorConfig, error) {
	pc := ProcessorConfig{
		Args:             defaultArgs(kind),
		Concurrent:       DefaultConcurrent,
		Weight:           DefaultWeight,
		ReadyTimeoutSecs: DefaultReadyTimeoutSecs,
		CheckTimeoutSecs: DefaultCheckTimeoutSecs,
		ProveTimeoutSecs: DefaultProveTimeoutSecs,
		Envs:             map[string]string{},
	}
	blockErr := func(key, format string, args ...any) error {
		return fmt.Errorf("[[%s]] block %d of %d: key %s: %s", kind, idx+1, total, key, fmt.Sprintf(format, args...))
	}
	intKey := func(key string, v any, dst *int, max int64) error {
		n, ok := v.(int64)
		if !ok {
			return blockErr(key, "must be a whole number, got %s", tomlType(v))
		}
		if n < 1 || n > max {
			return blockErr(key, "%d is out of range; use a whole number from 1 to %d", n, max)
		}
		*dst = int(n)
		return nil
	}
	// Sorted so that a file with several mistakes always reports the same one.
	for _, key := range slices.Sorted(maps.Keys(b)) {
		v := b[key]
		var err error
		switch key {
		case "Bin":
			s, ok := v.(string)
			switch {
			case !ok:
				err = blockErr(key, "must be a string, got %s", tomlType(v))
			case strings.TrimSpace(s) == "":
				err = blockErr(key, "is empty; leave the key out to run the vsm binary itself, or give a program path")
			case strings.ContainsRune(s, 0):
				err = blockErr(key, "contains a NUL byte")
			default:
				pc.Bin = s
			}
		case "Args":
			list, ok := v.([]any)
			if !ok {
				err = blockErr(key, "must be an array of strings, got %s", tomlType(v))
				break
			}
			pc.Args = make([]string, 0, len(list))
			for j, a := range list {
				s, ok := a.(string)
				if !ok {
					err = blockErr(key, "element %d must be a string, got %s", j, tomlType(a))
					break
				}
				if strings.ContainsRune(s, 0) {
					err = blockErr(key, "element %d contains a NUL byte", j)
					break
				}
				pc.Args = append(pc.Args, s)
			}
		case "Concurrent":
			err = intKey(key, v, &pc.Concurrent, 1024)
		case "Weight":
			err = intKey(key, v, &pc.Weight, 1_000_000)
		case "ReadyTimeoutSecs":
			err = intKey(key, v, &pc.ReadyTimeoutSecs, 3600)
		case "CheckTimeoutSecs":
			err = intKey(key, v, &pc.CheckTimeoutSecs, 86400)
		case "ProveTimeoutSecs":
			err = intKey(key, v, &pc.ProveTimeoutSecs, 86400)
		case "Envs":
			m, ok := v.(map[string]any)
			if !ok {
				err = blockErr(key, "must be a table ([%s.Envs]) of string values, got %s", kind, tomlType(v))
				break
			}
			for _, name := range slices.Sorted(maps.Keys(m)) {
				val := m[name]
				s, ok := val.(string)
				switch {
				case name == "" || strings.ContainsAny(name, "=\x00"):
					err = blockErr(key, "variable name %q is not valid (it must be non-empty and contain no '=' or NUL)", name)
				case !ok:
					err = blockErr(key, "value of %s must be a string (quote numbers: %s = \"1\"), got %s", name, name, tomlType(val))
				case strings.ContainsRune(s, 0):
					err = blockErr(key, "value of %s contains a NUL byte", name)
				default:
					pc.Envs[name] = s
				}
				if err != nil {
					break
				}
			}
		default:
			err = blockErr(key, "unknown key (valid keys: %s; keys are case-sensitive)", validKeys)
		}
		if err != nil {
			return ProcessorConfig{}, err
		}
	}
	return pc, nil
}

// errNoBlocks is returned by NewSupervisor for a Config built by hand without
// any child.
var errNoBlocks = errors.New("ext-prover config has no [[WdPost]] block")
