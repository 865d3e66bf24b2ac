package rpc

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifiedTokensAreRemembered checks that remembering tokens changes
// no answer: a remembered token keeps its permission, an expired one is
// refused even though it verified before, and a forged one never passes.
func TestVerifiedTokensAreRemembered(t *testing.T) {
	secret := []byte("0123456789abcdef")
	a, _ := NewAuth(secret)
	write, _ := a.NewToken(PermWrite)
	exp := time.Now().Add(1500 * time.Millisecond)
	expiring, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{Allow: PermAdmin.allowList(), RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(exp)}}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(write, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	cases := []struct {
		name  string
		token string
		wait  time.Duration // before the second check
		want  Perm
		ok    bool
	}{
		{"remembered token keeps its permission", write, 0, PermWrite, true},
		{"expired token refused after verifying once", expiring, time.Until(exp) + 1100*time.Millisecond, PermNone, false},
		{"forged signature refused", forged, 0, PermNone, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first, ferr := a.Verify(tc.token)
			time.Sleep(tc.wait)
			got, err := a.Verify(tc.token)
			if tc.ok && (err != nil || ferr != nil || got != tc.want || first != tc.want) {
				t.Fatalf("got %s then %s (%v, %v), want %s both times", first, got, ferr, err, tc.want)
			}
			if !tc.ok && err == nil {
				t.Fatalf("second check gave %s, want a refusal", got)
			}
		})
	}
}

// BenchmarkVerifyToken compares a request's token check from memory with
// a full parse and signature check, measured in the same run.
func BenchmarkVerifyToken(b *testing.B) {
	a, _ := NewAuth([]byte("0123456789abcdef0123456789abcdef"))
	tok, _ := a.NewToken(PermAdmin)
	b.Run("remembered", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := a.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := a.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
