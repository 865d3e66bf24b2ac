package gateway

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/vsm-project/vsm/fullnode"
)

// APIInfo is a parsed gateway address: where to dial and with what token.
type APIInfo struct {
	Token string
	URL   string // ws:// or wss:// ... /rpc/v2
}

// String is the address without the token, for logs.
func (a APIInfo) String() string { return a.URL }

// ParseAPIInfo parses a gateway entry in the form damocles' Common.API.Gateway
// takes, TOKEN:MULTIADDR or TOKEN:URL:
//
//	TOKEN:/ip4/10.0.0.5/tcp/45132
//	TOKEN:/dns/gw.example/tcp/45132/wss
//	TOKEN:ws://10.0.0.5:45132/rpc/v2
//
// The token is required (sophon-gateway authorises every miner by it). A
// multiaddr, or a URL without a path, is served at /rpc/v2 over websocket.
func ParseAPIInfo(s string) (APIInfo, error) {
	s = strings.TrimSpace(s)
	tok, addr, ok := strings.Cut(s, ":")
	if !ok || tok == "" || strings.HasPrefix(s, "/") || strings.Contains(tok, "/") {
		return APIInfo{}, fmt.Errorf("gateway %q: want TOKEN:/ip4/HOST/tcp/PORT (the token sophon-auth issued for the miners, then the gateway's address)", redact(s))
	}
	if tok == "ws" || tok == "wss" || tok == "http" || tok == "https" {
		return APIInfo{}, fmt.Errorf("gateway %q: no token; write TOKEN:%s", redact(s), s)
	}
	info, err := fullnode.ParseAPIInfo(s)
	if err != nil {
		return APIInfo{}, fmt.Errorf("gateway: %w", err)
	}
	u, err := url.Parse(info.URL)
	if err != nil {
		return APIInfo{}, fmt.Errorf("gateway %q: %w", redact(s), err)
	}
	if u.Path == fullnode.DefaultRPCPath && !strings.Contains(addr, fullnode.DefaultRPCPath) {
		u.Path = RPCPath
	}
	if u.Path != RPCPath {
		return APIInfo{}, fmt.Errorf("gateway %q: path %s; sophon-gateway serves the proof API at %s", redact(s), u.Path, RPCPath)
	}
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	return APIInfo{Token: info.Token, URL: u.String()}, nil
}

func redact(s string) string {
	if tok, addr, ok := strings.Cut(s, ":"); ok && !strings.HasPrefix(s, "/") && len(tok) > 6 {
		return tok[:3] + "…:" + addr
	}
	return s
}
