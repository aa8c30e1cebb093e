package identity

import (
	"strings"
	"testing"
)

// TestIsCompactJWSEveryByte: the table gives what the character classes
// say, for every byte alone and inside a token-sized string.
func TestIsCompactJWSEveryByte(t *testing.T) {
	tok := strings.Repeat("eyJhbGciOiJFUzI1NiJ9.abc-_XYZ019.", 40)
	for c := 0; c < 256; c++ {
		b := byte(c)
		want := 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
		if got := isCompactJWS(string([]byte{b})); got != want {
			t.Fatalf("byte %#x alone: %v, want %v", b, got, want)
		}
		mid := tok[:700] + string([]byte{b}) + tok[700:]
		if got := isCompactJWS(mid); got != want {
			t.Fatalf("byte %#x inside a token: %v, want %v", b, got, want)
		}
	}
	if !isCompactJWS("") || !isCompactJWS(tok) {
		t.Fatal("valid strings refused")
	}
}
