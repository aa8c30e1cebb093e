package identity

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestTokenHashIsSHA256(t *testing.T) {
	a := &Authority{}
	for _, tok := range []string{"", "a", strings.Repeat("x.y.z", 400), strings.Repeat("b", 5000)} {
		for range 2 { // a fresh buffer, then a reused one
			if got, want := a.tokenHash(tok), sha256.Sum256([]byte(tok)); got != want {
				t.Fatalf("tokenHash(%d bytes) != SHA-256", len(tok))
			}
		}
	}
}

// BenchmarkValidateCached is the cost of authenticating a request whose
// token was validated before: hash, cache lookup, exp/nbf/audience checks.
func BenchmarkValidateCached(b *testing.B) {
	e := newTestAuthority(b)
	tok, _, err := e.a.IssueAppToken(e.sp, testAudience)
	if err != nil {
		b.Fatal(err)
	}
	auds := []string{testAudience, testAudience + "/"}
	if _, _, err := e.a.Validate(tok, auds); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.a.Validate(tok, auds); err != nil {
			b.Fatal(err)
		}
	}
}
