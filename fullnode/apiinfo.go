package fullnode

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultRPCPath is where Lotus and venus serve the v1 full-node API (the
// version that has StateGetRandomnessFromBeacon with the tipset last).
const DefaultRPCPath = "/rpc/v1"

// APIInfo is a parsed FULLNODE_API_INFO string.
type APIInfo struct {
	Token string // bearer token; empty means none (read-only on Lotus)
	URL   string // full HTTP endpoint, e.g. http://127.0.0.1:1234/rpc/v1
}

// String renders the info back in the TOKEN:MULTIADDR form when the URL is
// plain http(s) on an IP, else TOKEN:URL.
func (a APIInfo) String() string {
	addr := a.URL
	if u, err := url.Parse(a.URL); err == nil && u.Path == DefaultRPCPath {
		host, port, err := net.SplitHostPort(u.Host)
		if err == nil {
			proto := "ip4"
			if ip := net.ParseIP(host); ip == nil {
				proto = "dns"
			} else if ip.To4() == nil {
				proto = "ip6"
			}
			addr = fmt.Sprintf("/%s/%s/tcp/%s/%s", proto, host, port, u.Scheme)
		}
	}
	if a.Token == "" {
		return addr
	}
	return a.Token + ":" + addr
}

// ParseAPIInfo parses the forms Lotus tools accept:
//
//	TOKEN:/ip4/127.0.0.1/tcp/1234/http
//	TOKEN:/dns/node.example/tcp/1234/https
//	TOKEN:http://127.0.0.1:1234          (path defaults to /rpc/v1)
//	/ip4/127.0.0.1/tcp/1234/http         (no token)
//	http://127.0.0.1:1234/rpc/v1         (no token)
//
// A trailing /ws or /wss in a multiaddr is served as http or https: Lotus
// answers JSON-RPC on the same endpoint over either transport.
func ParseAPIInfo(s string) (APIInfo, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return APIInfo{}, fmt.Errorf("api info: empty; want TOKEN:/ip4/HOST/tcp/PORT/http or TOKEN:http://HOST:PORT")
	}
	var token, addr string
	switch {
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		addr = s
	default:
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return APIInfo{}, fmt.Errorf("api info %q: missing ':' between token and address", redact(s))
		}
		token, addr = s[:i], s[i+1:]
		if strings.ContainsAny(token, " \t/") {
			return APIInfo{}, fmt.Errorf("api info: token contains whitespace or '/'; want TOKEN:ADDRESS")
		}
	}
	var u string
	var err error
	if strings.HasPrefix(addr, "/") {
		u, err = multiaddrToURL(addr)
	} else {
		u, err = normalizeURL(addr)
	}
	if err != nil {
		return APIInfo{}, fmt.Errorf("api info: %w", err)
	}
	return APIInfo{Token: token, URL: u}, nil
}

// redact keeps a token out of error messages.
func redact(s string) string {
	if len(s) > 12 {
		return s[:6] + "…"
	}
	return s
}

func multiaddrToURL(ma string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(ma, "/"), "/")
	if len(parts) < 4 {
		return "", fmt.Errorf("multiaddr %q: want /ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT[/http|https|ws|wss]", ma)
	}
	host := parts[1]
	switch parts[0] {
	case "ip4":
		if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
			return "", fmt.Errorf("multiaddr %q: %q is not an IPv4 address", ma, host)
		}
	case "ip6":
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", fmt.Errorf("multiaddr %q: %q is not an IPv6 address", ma, host)
		}
		host = "[" + host + "]"
	case "dns", "dns4", "dns6":
		if host == "" {
			return "", fmt.Errorf("multiaddr %q: empty host name", ma)
		}
	default:
		return "", fmt.Errorf("multiaddr %q: unsupported protocol %q (want ip4, ip6, dns, dns4 or dns6)", ma, parts[0])
	}
	if parts[2] != "tcp" {
		return "", fmt.Errorf("multiaddr %q: want tcp after the host, got %q", ma, parts[2])
	}
	port, err := strconv.ParseUint(parts[3], 10, 16)
	if err != nil || port == 0 {
		return "", fmt.Errorf("multiaddr %q: bad tcp port %q", ma, parts[3])
	}
	scheme := "http"
	switch rest := parts[4:]; {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == "http" || rest[0] == "ws"):
	case len(rest) == 1 && (rest[0] == "https" || rest[0] == "wss"):
		scheme = "https"
	default:
		return "", fmt.Errorf("multiaddr %q: unsupported suffix /%s (want http, https, ws or wss)", ma, strings.Join(rest, "/"))
	}
	return fmt.Sprintf("%s://%s:%d%s", scheme, host, port, DefaultRPCPath), nil
}

func normalizeURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", s, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("url %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("url %q: no host", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultRPCPath
	}
	return u.String(), nil
}
