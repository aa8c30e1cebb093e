//go:build cgo

package hsm_test

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/keys"
)

// The handle cache (CKA_ID → object handle) stays correct when another
// user of the token (another Keyward node, or a second HSM value) purges
// a key and makes a new one under the same CKA_ID behind this value's
// back: the next signature uses the new object, and once the object is
// gone a signature fails instead of using anything stale.
func TestHandleCacheAfterOutOfBandPurgeAndRecreate(t *testing.T) {
	h1, tok := hsmtest.Open(t)
	h2, err := hsm.Open(tok.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	ctx := context.Background()
	spec := keys.Spec{Kty: keys.KtyEC, Curve: keys.CurveP256, ID: "cache-0123456789abcdef"}
	d := sha256.Sum256([]byte("msg"))
	sign := func(h *hsm.HSM, handle []byte) ([]byte, error) {
		t.Helper()
		op, err := h.Load(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		return op.Sign(ctx, keys.AlgES256, d[:])
	}
	verifies := func(pub keys.JWK, sig []byte) bool {
		k, err := keys.FromJWK(pub)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := k.Verify(keys.AlgES256, d[:], sig)
		return ok && err == nil
	}

	hd1, pub1, err := h1.Generate(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign(h1, hd1) // h1 caches the object's handle
	if err != nil || !verifies(pub1, sig) {
		t.Fatalf("first signature: %v", err)
	}

	if err := h2.Destroy(ctx, hd1); err != nil {
		t.Fatal(err)
	}
	hd2, pub2, err := h2.Generate(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the first finds the cached handle stale, the second uses the re-cached one
		sig, err = sign(h1, hd2)
		if err != nil {
			t.Fatalf("signature %d with the recreated key: %v", i, err)
		}
		if !verifies(pub2, sig) || verifies(pub1, sig) {
			t.Fatalf("signature %d was not made by the recreated key", i)
		}
	}

	if err := h2.Destroy(ctx, hd2); err != nil {
		t.Fatal(err)
	}
	if sig, err := sign(h1, hd2); err == nil {
		t.Fatalf("a purged key still signed (%d bytes)", len(sig))
	}
}
