package barrier

import (
	"context"
	"errors"
	"testing"
)

// TestVerifySharesChangesNothing: a threshold of the unseal shares
// verifies, fewer or foreign ones do not, and neither changes the seal
// state (quorum break-glass uses it on a running node).
func TestVerifySharesChangesNothing(t *testing.T) {
	ctx := context.Background()
	b, _, shares := initShamir(t, 5, 3)
	for _, s := range shares[:3] {
		if _, err := b.Unseal(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.VerifyShares(ctx, shares[1:4]); err != nil {
		t.Fatalf("a threshold of the shares: %v", err)
	}
	if err := b.VerifyShares(ctx, shares[:2]); err == nil {
		t.Fatal("two of three shares verified")
	}
	_, _, other := initShamir(t, 5, 3)
	if err := b.VerifyShares(ctx, other[:3]); !errors.Is(err, ErrBadShares) {
		t.Fatalf("foreign shares: %v", err)
	}
	if err := b.VerifyShares(ctx, [][]byte{[]byte("short"), []byte("x"), []byte("y")}); !errors.Is(err, ErrMalformedShare) {
		t.Fatalf("malformed: %v", err)
	}
	if b.Sealed() {
		t.Fatal("verifying shares sealed the barrier")
	}
}
