package prover

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	def := ProcessorConfig{Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 5, CheckTimeoutSecs: 120, ProveTimeoutSecs: 1800, Envs: map[string]string{}}
	tests := []struct {
		name    string
		text    string
		want    []ProcessorConfig
		wantErr string
	}{
		{"default text", DefaultConfigText, []ProcessorConfig{def}, ""},
		{"empty", "", []ProcessorConfig{def}, ""},
		{"two GPUs", `
[[WdPost]]
Bin = "/opt/prover"
Args = ["window_post", "--gpu"]
Concurrent = 2
Weight = 3
ReadyTimeoutSecs = 30
CheckTimeoutSecs = 15
ProveTimeoutSecs = 600
[WdPost.Envs]
CUDA_VISIBLE_DEVICES = "0"
TMPDIR = "/tmp/gpu0"

[[WdPost]]
[WdPost.Envs]
CUDA_VISIBLE_DEVICES = "1"
`, []ProcessorConfig{
			{Bin: "/opt/prover", Args: []string{"window_post", "--gpu"}, Concurrent: 2, Weight: 3, ReadyTimeoutSecs: 30, CheckTimeoutSecs: 15, ProveTimeoutSecs: 600,
				Envs: map[string]string{"CUDA_VISIBLE_DEVICES": "0", "TMPDIR": "/tmp/gpu0"}},
			{Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 5, CheckTimeoutSecs: 120, ProveTimeoutSecs: 1800, Envs: map[string]string{"CUDA_VISIBLE_DEVICES": "1"}},
		}, ""},
		{"empty Args allowed", "[[WdPost]]\nArgs = []\n", []ProcessorConfig{{Args: []string{}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 5, CheckTimeoutSecs: 120, ProveTimeoutSecs: 1800, Envs: map[string]string{}}}, ""},
		{"unknown key", "[[WdPost]]\n[[WdPost]]\nConcurent = 2\n", nil, "block 2 of 2: key Concurent: unknown key"},
		{"lower-case key", "[[WdPost]]\nbin = 'x'\n", nil, "key bin: unknown key"},
		{"wrong type", "[[WdPost]]\nConcurrent = \"2\"\n", nil, "block 1 of 1: key Concurrent: must be a whole number, got a string"},
		{"zero weight", "[[WdPost]]\nWeight = 0\n", nil, "key Weight: 0 is out of range"},
		{"zero check timeout", "[[WdPost]]\nCheckTimeoutSecs = 0\n", nil, "key CheckTimeoutSecs: 0 is out of range; use a whole number from 1 to 86400"},
		{"prove timeout in minutes", "[[WdPost]]\nProveTimeoutSecs = '30m'\n", nil, "key ProveTimeoutSecs: must be a whole number, got a string"},
		{"negative concurrent", "[[WdPost]]\nConcurrent = -1\n", nil, "key Concurrent: -1 is out of range"},
		{"empty Bin", "[[WdPost]]\nBin = ''\n", nil, "key Bin: is empty"},
		{"Args not strings", "[[WdPost]]\nArgs = [1]\n", nil, "key Args: element 0 must be a string"},
		{"Args a string", "[[WdPost]]\nArgs = 'wdpost'\n", nil, "key Args: must be an array of strings"},
		{"env number", "[[WdPost]]\n[WdPost.Envs]\nCUDA_VISIBLE_DEVICES = 0\n", nil, `value of CUDA_VISIBLE_DEVICES must be a string (quote numbers: CUDA_VISIBLE_DEVICES = "1")`},
		{"single table", "[WdPost]\nBin = 'x'\n", nil, "must be written as [[WdPost]] blocks"},
		{"top-level key", "Bin = 'x'\n", nil, `unknown top-level key "Bin"`},
		{"bad TOML", "[[WdPost]\n", nil, "parse TOML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseAs(t, tt.text, tt.wantErr)
			if !ok {
				return
			}
			if !reflect.DeepEqual(cfg.WdPost, tt.want) {
				t.Fatalf("got %+v\nwant %+v", cfg.WdPost, tt.want)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ConfigFileName)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte("[[WdPost]]\nWeight = 'x'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "key Weight") {
		t.Errorf("bad file: %v, want the path and the key", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(DefaultConfigText)
	f.Add("[[WdPost]]\nBin = '/x'\nArgs = ['a']\nConcurrent = 2\nWeight = 3\nReadyTimeoutSecs = 4\n[WdPost.Envs]\nA = 'b'\n")
	f.Add("[[WdPost]]\n[[WdPost]]\nConcurrent = 99999999999\n")
	f.Add("WdPost = 3")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := ParseConfig([]byte(text))
		if err != nil {
			return
		}
		// Whatever parsed must be usable: defaults applied, limits held.
		if len(cfg.WdPost) == 0 {
			t.Fatal("no blocks without an error")
		}
		for i, b := range cfg.WdPost {
			if b.Concurrent < 1 || b.Weight < 1 || b.ReadyTimeoutSecs < 1 || b.Args == nil || b.Envs == nil {
				t.Fatalf("block %d not normalized: %+v", i, b)
			}
		}
	})
}

func TestParseConfigWinPost(t *testing.T) {
	tests := []struct {
		name        string
		text        string
		wdpost, win int
		winArgs     []string
		wantErr     string
	}{
		{"winpost beside default wdpost", "[[WinPost]]\n", 1, 1, []string{"winpost"}, ""},
		{"both", "[[WdPost]]\n[[WdPost]]\n[[WinPost]]\nArgs = ['winning']\n", 2, 1, []string{"winning"}, ""},
		{"none", "", 1, 0, nil, ""},
		{"winpost bad key", "[[WinPost]]\nGPU = 1\n", 0, 0, nil, "[[WinPost]] block 1 of 1: key GPU: unknown key"},
		{"winpost single table", "[WinPost]\n", 0, 0, nil, "must be written as [[WinPost]] blocks"},
		{"winpost env not table", "[[WinPost]]\nEnvs = 1\n", 0, 0, nil, "must be a table ([WinPost.Envs])"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseAs(t, tt.text, tt.wantErr)
			if !ok {
				return
			}
			if len(cfg.WdPost) != tt.wdpost || len(cfg.WinPost) != tt.win {
				t.Fatalf("got %d WdPost and %d WinPost blocks, want %d and %d", len(cfg.WdPost), len(cfg.WinPost), tt.wdpost, tt.win)
			}
			if tt.win > 0 && !reflect.DeepEqual(cfg.WinPost[0].Args, tt.winArgs) {
				t.Errorf("WinPost Args %q, want %q", cfg.WinPost[0].Args, tt.winArgs)
			}
		})
	}
}

// parseAs parses text and checks the outcome against wantErr (a substring
// of the error, "" for success). It reports whether a config came back.
func parseAs(t *testing.T, text, wantErr string) (Config, bool) {
	t.Helper()
	cfg, err := ParseConfig([]byte(text))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want it to contain %q", err, wantErr)
		}
		return Config{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg, true
}
