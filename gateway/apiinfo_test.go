package gateway

import (
	"strings"
	"testing"
)

func TestParseAPIInfo(t *testing.T) {
	tests := []struct {
		in, token, url, err string
	}{
		{in: "tok:/ip4/127.0.0.1/tcp/45132", token: "tok", url: "ws://127.0.0.1:45132/rpc/v2"},
		{in: "tok:/ip4/127.0.0.1/tcp/45132/ws", token: "tok", url: "ws://127.0.0.1:45132/rpc/v2"},
		{in: "tok:/dns/gw.example/tcp/443/wss", token: "tok", url: "wss://gw.example:443/rpc/v2"},
		{in: "tok:ws://10.0.0.5:45132/rpc/v2", token: "tok", url: "ws://10.0.0.5:45132/rpc/v2"},
		{in: "tok:http://10.0.0.5:45132", token: "tok", url: "ws://10.0.0.5:45132/rpc/v2"},
		{in: "/ip4/127.0.0.1/tcp/45132", err: "want TOKEN:/ip4/HOST/tcp/PORT"},
		{in: "ws://127.0.0.1:45132/rpc/v2", err: "no token"},
		{in: "tok:ws://10.0.0.5:45132/rpc/v1", err: "sophon-gateway serves the proof API at /rpc/v2"},
		{in: "tok:/ip4/127.0.0.1/udp/45132", err: "want tcp"},
		{in: "", err: "want TOKEN:"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAPIInfo(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Token != tt.token || got.URL != tt.url {
				t.Errorf("got %+v, want token %q url %q", got, tt.token, tt.url)
			}
		})
	}
}
