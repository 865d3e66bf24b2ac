package daemon

import (
	"strings"
	"testing"
	"time"
)

func TestDebugWriteDelay(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		wantErr string
	}{
		{value: "", want: 0},
		{value: "8s", want: 8 * time.Second},
		{value: "8", wantErr: "want a duration such as 5s"},
		{value: "-1s", wantErr: "want a duration such as 5s"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv(debugWriteDelayEnv, tt.value)
			got, err := debugWriteDelay()
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), debugWriteDelayEnv) {
					t.Fatalf("%q: error %v, want one naming %s and saying %q", tt.value, err, debugWriteDelayEnv, tt.wantErr)
				}
			case err != nil || got != tt.want:
				t.Fatalf("%q: %v, %v; want %v", tt.value, got, err, tt.want)
			}
		})
	}
}
