package prover

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		line    string
		id      uint64
		wantErr string
	}{
		{`{"id":3,"err_msg":null,"output":{"proofs":[],"faults":[]}}`, 3, ""},
		{`{"id":4,"err_msg":"boom","output":null}`, 4, ""},
		{`{"id":18446744073709551615,"err_msg":"x"}`, 18446744073709551615, ""},
		{`{"id":5}`, 5, "neither err_msg nor output"},
		{`{"id":-1,"err_msg":"x"}`, 0, "not an unsigned 64-bit integer"},
		{`{"id":1.5,"err_msg":"x"}`, 0, "not an unsigned"},
		{`{"err_msg":"x"}`, 0, "no id"},
		{`window_post processor ready`, 0, "not a JSON object"},
		{`{"id":1,"err_msg":"x"} {"id":2}`, 0, "trailing data"},
		{`[1,2]`, 0, "not a JSON object"},
		{`{"id":1,"err_msg":5}`, 0, "not a JSON object"},
	}
	for _, tt := range tests {
		r, err := DecodeResponse([]byte(tt.line))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DecodeResponse(%s) error = %v, want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil || r.ID != tt.id {
			t.Errorf("DecodeResponse(%s) = %+v, %v", tt.line, r, err)
		}
	}
}

func TestDecodeTask(t *testing.T) {
	seed := "[" + strings.Repeat("1,", 31) + "2]"
	comm := "[" + strings.Repeat("255,", 31) + "0]"
	tests := []struct {
		name, task, wantErr string
	}{
		{"ok", `{"miner_id":1000,"proof_type":"StackedDrgWindow2KiBV1_2","replicas":[{"sector_id":1,"comm_r":` + comm + `,"cache_dir":"/c","sealed_file":"/s"}],"seed":` + seed + `}`, ""},
		{"short seed", `{"miner_id":1,"proof_type":"x","replicas":[],"seed":[1,2,3]}`, "want an array of 32 numbers, got 3"},
		{"byte overflow", `{"miner_id":1,"proof_type":"x","replicas":[],"seed":[` + strings.Repeat("1,", 31) + `256]}`, "element 31 (256) is not a byte"},
		{"seed as base64", `{"miner_id":1,"proof_type":"x","replicas":[],"seed":"AAAA"}`, "want an array of 32 numbers"},
		{"no seed", `{"miner_id":1,"proof_type":"x","replicas":[]}`, "no seed"},
		{"no miner", `{"proof_type":"x","replicas":[],"seed":` + seed + `}`, "no miner_id"},
		{"relative path", `{"miner_id":1,"proof_type":"x","replicas":[{"sector_id":9,"comm_r":` + comm + `,"cache_dir":"c","sealed_file":"/s"}],"seed":` + seed + `}`, "replica 0 (sector 9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := decodeWindowPoStTask(json.RawMessage(tt.task))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if task.Seed[31] != 2 || task.Replicas[0].CommR[0] != 255 {
				t.Fatalf("decoded %+v", task)
			}
			// Round trip: the encoding is the vc-processors one (arrays of numbers).
			b, _ := json.Marshal(task)
			if !strings.Contains(string(b), `"seed":`+seed) {
				t.Fatalf("seed not encoded as an array of numbers: %s", b)
			}
		})
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"id":3,"err_msg":null,"output":{"proofs":["AAE="],"faults":[1]}}`))
	f.Add([]byte(`{"id":4,"err_msg":"boom","output":null}`))
	f.Add([]byte(`{"id":5}`))
	f.Add([]byte(`window_post processor ready`))
	f.Add([]byte(`{"id":1e3,"output":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := DecodeResponse(line)
		if err != nil {
			return
		}
		if r.ErrMsg == nil && r.Output == nil {
			t.Fatal("accepted a response with neither err_msg nor output")
		}
		if r.Output != nil && !json.Valid(r.Output) {
			t.Fatal("accepted invalid JSON output")
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":1,"task":{"miner_id":1000,"proof_type":"StackedDrgWindow2KiBV1_2","replicas":[],"seed":[` + strings.Repeat("0,", 31) + `0]}}`))
	f.Add([]byte(`{"id":2,"task":null}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := DecodeRequest(line)
		if err != nil {
			return
		}
		if req.Task == nil || !json.Valid(req.Task) {
			t.Fatal("accepted a request without a valid task")
		}
		// The task decoder must not panic on anything the request decoder lets through.
		_, _ = decodeWindowPoStTask(req.Task)
	})
}
