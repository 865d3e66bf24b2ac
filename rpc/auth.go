// Package rpc owns vsm's wire: the HTTP JSON-RPC 2.0 server and client,
// API tokens, and the VSM method set. It holds no state of its own; every
// method reads the local FSM or writes through the cluster.
package rpc

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
type Auth struct{ secret []byte }

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

// Verify returns the strongest permission a token carries.
func (a *Auth) Verify(token string) (Perm, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
	if err != nil {
		return PermNone, fmt.Errorf("invalid token: %w", err)
	}
	best := PermNone
	for _, name := range c.Allow {
		if i := slices.Index(permNames, name); i > int(best) {
			best = Perm(i)
		}
	}
	if best == PermNone {
		return PermNone, errors.New("token carries no permission")
	}
	return best, nil
}
