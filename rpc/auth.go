// Package rpc owns vsm's wire: the HTTP JSON-RPC 2.0 server and client,
// API tokens, and the VSM method set. It holds no state of its own; every
// method reads the local FSM or writes through the cluster.
package rpc

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Perm is an API permission. Each one includes those below it.
type Perm int

// Permissions, weakest first.
const (
	PermNone Perm = iota
	PermRead
	PermWrite
	PermAdmin
)

var permNames = []string{"none", "read", "write", "admin"}

func (p Perm) String() string {
	if p < 0 || int(p) >= len(permNames) {
		return fmt.Sprintf("perm(%d)", int(p))
	}
	return permNames[p]
}

// ParsePerm reads "read", "write" or "admin".
func ParsePerm(s string) (Perm, error) {
	i := slices.Index(permNames, strings.ToLower(s))
	if i <= 0 {
		return PermNone, fmt.Errorf("permission %q: want read, write or admin", s)
	}
	return Perm(i), nil
}

// allowList is the token's claim, in Lotus's shape ({"Allow": [...]}),
// listing every permission the token carries.
func (p Perm) allowList() []string { return slices.Clone(permNames[1 : p+1]) }

type claims struct {
	Allow []string `json:"Allow"`
	jwt.RegisteredClaims
}

// Auth signs and checks HS256 API tokens.
type Auth struct {
	secret []byte
	// verified remembers tokens already checked: parsing and signing one
	// costs more than the rest of a small write's request handling, and a
	// client sends the same token with every request.
	verified tokenCache
}

// tokenCache maps a token that verified to its permission and expiry.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	perm Perm
	exp  time.Time // zero: the token does not expire
}

// maxVerified bounds the cache; when full it starts over (tokens are few:
// one per operator, daemon and tool).
const maxVerified = 1024

func (c *tokenCache) get(token string) (Perm, bool) {
	c.mu.RLock()
	v, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || (!v.exp.IsZero() && !time.Now().Before(v.exp)) {
		return PermNone, false
	}
	return v.perm, true
}

func (c *tokenCache) put(token string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[string]verifiedToken)
	}
	c.m[token] = v
}

// NewAuth uses secret (the home's jwt-secret, shared by all members).
func NewAuth(secret []byte) (*Auth, error) {
	if len(secret) < 16 {
		return nil, errors.New("token secret must be at least 16 bytes")
	}
	return &Auth{secret: secret}, nil
}

// NewToken signs a token carrying perm and all weaker permissions.
func (a *Auth) NewToken(perm Perm) (string, error) {
	if perm <= PermNone || perm > PermAdmin {
		return "", fmt.Errorf("cannot make a token with permission %s", perm)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{Allow: perm.allowList()})
	s, err := t.SignedString(a.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify returns the strongest permission a token carries. A token that
// verified before is answered from memory until it expires.
func (a *Auth) Verify(token string) (Perm, error) {
	if p, ok := a.verified.get(token); ok {
		return p, nil
	}
	p, exp, err := a.verify(token)
	if err != nil {
		return PermNone, err
	}
	a.verified.put(token, verifiedToken{perm: p, exp: exp})
	return p, nil
}

func (a *Auth) verify(token string) (Perm, time.Time, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
	if err != nil {
		return PermNone, time.Time{}, fmt.Errorf("invalid token: %w", err)
	}
	best := PermNone
	for _, name := range c.Allow {
		if i := slices.Index(permNames, name); i > int(best) {
			best = Perm(i)
		}
	}
	if best == PermNone {
		return PermNone, time.Time{}, errors.New("token carries no permission")
	}
	var exp time.Time
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.Time
	}
	return best, exp, nil
}
