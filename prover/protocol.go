package prover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadyLine is the first line a child prints on stdout once it can take
// requests (the damocles vc-processors handshake for the WindowPoSt stage).
const ReadyLine = "window_post processor ready"

// WinningReadyLine is the ready line of a [[WinPost]] child (the
// vc-processors WinningPoSt stage).
const WinningReadyLine = "winning_post processor ready"

// readyLine is the handshake a child of kind must print.
func readyLine(kind string) string {
	if kind == KindWinPost {
		return WinningReadyLine
	}
	return ReadyLine
}

// processorName is the stage name logs carry, the ready line's first word.
func processorName(ready string) string {
	name, _, _ := strings.Cut(ready, " ")
	return name
}

// MaxLineBytes bounds one protocol line. A partition of 2349 sectors is
// about 1 MiB of request; proofs of the built-in engine for one are about
// 6 MiB of response. Anything far beyond is a broken peer, not a message.
const MaxLineBytes = 64 << 20

// Request is one line the parent writes to a child's stdin.
type Request struct {
	// ID is unique per child connection and starts at 1.
	ID   uint64          `json:"id"`
	Task json.RawMessage `json:"task"`
}

// Response is one line a child writes to stdout. Exactly one of ErrMsg and
// Output is meaningful: a non-nil ErrMsg is a failure.
type Response struct {
	ID     uint64          `json:"id"`
	ErrMsg *string         `json:"err_msg"`
	Output json.RawMessage `json:"output"`
}

// DecodeRequest parses a request line. The error says what was wrong; when
// the line carried a readable id it is returned too, so the child can answer
// that id with the error instead of staying silent.
func DecodeRequest(line []byte) (Request, error) {
	var raw struct {
		ID   *json.RawMessage `json:"id"`
		Task json.RawMessage  `json:"task"`
	}
	if err := decodeObject(line, &raw); err != nil {
		return Request{}, fmt.Errorf("request is not a JSON object: %w", err)
	}
	id, err := decodeID(raw.ID)
	if err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	if len(raw.Task) == 0 || bytes.Equal(raw.Task, []byte("null")) {
		return Request{ID: id}, fmt.Errorf("request %d has no task", id)
	}
	return Request{ID: id, Task: raw.Task}, nil
}

// DecodeResponse parses a response line from a child.
func DecodeResponse(line []byte) (Response, error) {
	var raw struct {
		ID     *json.RawMessage `json:"id"`
		ErrMsg *string          `json:"err_msg"`
		Output json.RawMessage  `json:"output"`
	}
	if err := decodeObject(line, &raw); err != nil {
		return Response{}, fmt.Errorf("response is not a JSON object of the protocol: %w", err)
	}
	id, err := decodeID(raw.ID)
	if err != nil {
		return Response{}, fmt.Errorf("response: %w", err)
	}
	resp := Response{ID: id, ErrMsg: raw.ErrMsg}
	if len(raw.Output) > 0 && !bytes.Equal(raw.Output, []byte("null")) {
		resp.Output = raw.Output
	}
	if resp.ErrMsg == nil && resp.Output == nil {
		return resp, fmt.Errorf("response %d has neither err_msg nor output", id)
	}
	return resp, nil
}

func decodeObject(line []byte, v any) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return errors.New("line does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func decodeID(raw *json.RawMessage) (uint64, error) {
	if raw == nil {
		return 0, errors.New("no id")
	}
	id, err := strconv.ParseUint(string(*raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("id %s is not an unsigned 64-bit integer", truncate(string(*raw), 40))
	}
	return id, nil
}

// Bytes32 is a 32-byte value written in JSON as an array of 32 numbers (the
// serde encoding of [u8; 32] that vc-processors uses for comm_r and seed;
// encoding/json writes a byte array that way by itself).
type Bytes32 [32]byte

// UnmarshalJSON insists on exactly 32 numbers in 0..255: encoding/json would
// silently zero-fill a short array and drop extra elements of a long one,
// which would turn a truncated comm_r into a wrong proof instead of an error.
func (b *Bytes32) UnmarshalJSON(data []byte) error {
	var nums []json.Number
	if err := json.Unmarshal(data, &nums); err != nil {
		return fmt.Errorf("want an array of 32 numbers: %w", err)
	}
	if len(nums) != 32 {
		return fmt.Errorf("want an array of 32 numbers, got %d", len(nums))
	}
	for i, n := range nums {
		v, err := strconv.ParseUint(n.String(), 10, 8)
		if err != nil {
			return fmt.Errorf("element %d (%s) is not a byte value 0..255", i, n)
		}
		b[i] = byte(v)
	}
	return nil
}

// Replica is one sector of a WindowPoSt task.
type Replica struct {
	SectorID   uint64  `json:"sector_id"`
	CommR      Bytes32 `json:"comm_r"`
	CacheDir   string  `json:"cache_dir"`
	SealedFile string  `json:"sealed_file"`
}

// WindowPoStTask is the task of a WindowPoSt request: prove the sectors of
// one SubmitWindowedPoSt message (one or more partitions) as ONE proof.
// Replicas is the union of the sectors to prove in all of the message's
// partitions, sorted by sector number; the answer carries exactly one proof
// (or the faults that prevented it), as damocles' window_post task does.
type WindowPoStTask struct {
	MinerID uint64 `json:"miner_id"`
	// ProofType is the proofs-api name, e.g. "StackedDrgWindow32GiBV1_2".
	ProofType string    `json:"proof_type"`
	Replicas  []Replica `json:"replicas"`
	// Seed is the challenge randomness with seed[31] &= 0x3f applied.
	Seed Bytes32 `json:"seed"`
	// CheckOnly asks for the vanilla reads only (used by proving check); a
	// SNARK prover may skip the SNARK. Provers that do not know the key
	// ignore it and do the full proof, which is slower but still correct.
	CheckOnly bool `json:"check_only,omitempty"`
}

// WindowPoStOutput is the output of a WindowPoSt response. Proofs holds
// ONE proof over the task's replicas minus Faults, in sector order (what
// the actor verifies with the faults as the message's Skipped sectors), or
// none when no replica could be proven (or the child does not prove
// alongside faults, in which case the runner asks again without them).
type WindowPoStOutput struct {
	Proofs [][]byte `json:"proofs"`
	Faults []uint64 `json:"faults"`
	// The keys below are the built-in engine's own; other provers leave
	// them out.

	// FaultReasons maps a faulty sector number (decimal string) to why.
	FaultReasons map[string]string `json:"fault_reasons,omitempty"`
	// Engine names the engine that made the proof.
	Engine string `json:"engine,omitempty"`
	// ChallengedReads counts the challenged leaves read with their paths.
	ChallengedReads int64 `json:"challenged_reads,omitempty"`
	// VanillaSeconds is the time spent reading.
	VanillaSeconds float64 `json:"vanilla_seconds,omitempty"`
}

// decodeWindowPoStTask parses and checks a task; errors name the field and,
// for a replica, its index.
func decodeWindowPoStTask(raw json.RawMessage) (WindowPoStTask, error) {
	var t struct {
		MinerID   *uint64   `json:"miner_id"`
		ProofType string    `json:"proof_type"`
		Replicas  []Replica `json:"replicas"`
		Seed      *Bytes32  `json:"seed"`
		CheckOnly bool      `json:"check_only"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return WindowPoStTask{}, fmt.Errorf("task is not a WindowPoSt task: %w", err)
	}
	switch {
	case t.MinerID == nil:
		return WindowPoStTask{}, errors.New("task has no miner_id")
	case t.ProofType == "":
		return WindowPoStTask{}, errors.New("task has no proof_type (e.g. \"StackedDrgWindow32GiBV1_2\")")
	case t.Seed == nil:
		return WindowPoStTask{}, errors.New("task has no seed (32 numbers)")
	}
	for i, r := range t.Replicas {
		if !filepath.IsAbs(r.SealedFile) || !filepath.IsAbs(r.CacheDir) {
			return WindowPoStTask{}, fmt.Errorf("replica %d (sector %d): sealed_file %q and cache_dir %q must be absolute paths resolved by the parent",
				i, r.SectorID, r.SealedFile, r.CacheDir)
		}
	}
	return WindowPoStTask{MinerID: *t.MinerID, ProofType: t.ProofType, Replicas: t.Replicas, Seed: *t.Seed, CheckOnly: t.CheckOnly}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// WinningPoStTask is the task of a WinningPoSt request: prove the
// challenged sector(s) of a mining round. Its fields are the WindowPoSt
// task's (as damocles' vc-processors WinningPoSt task); ProofType is a
// WinningPoSt name ("StackedDrgWinning32GiBV1"), which is how a child tells
// the two kinds apart, and Replicas holds exactly the challenged sectors
// (one, WINNING_POST_SECTOR_COUNT).
type WinningPoStTask struct {
	MinerID   uint64    `json:"miner_id"`
	ProofType string    `json:"proof_type"`
	Replicas  []Replica `json:"replicas"`
	// Seed is the WinningPoSt randomness with seed[31] &= 0x3f applied.
	Seed Bytes32 `json:"seed"`
}

// WinningPoStOutput is the output of a WinningPoSt response: one proof.
// A sector that cannot be proven is an error (err_msg), not a fault: a
// block cannot skip its challenged sector.
type WinningPoStOutput struct {
	Proofs [][]byte `json:"proofs"`
	// The built-in engine's own keys, as in WindowPoStOutput.
	Engine          string  `json:"engine,omitempty"`
	ChallengedReads int64   `json:"challenged_reads,omitempty"`
	VanillaSeconds  float64 `json:"vanilla_seconds,omitempty"`
}
