package vault

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/internal/skr"
)

// TestReleaseSignerPersistsAndRotates: the release signing key is kept in
// the barrier, so a second Service on the same barrier (another node, or
// this one after a restart) signs with the same key and publishes it with
// its certificate; a rotation on one node is what every node signs with
// next, the retired key stays published (old responses still verify) for
// thirty days, and the published keys are public halves only.
func TestReleaseSignerPersistsAndRotates(t *testing.T) {
	ctx := context.Background()
	a, clk, _ := newServiceMem(t)
	a.release = &Release{Verifier: skr.NewVerifier(nil)}
	b := New(a.store, clk, Deps{Release: &Release{Verifier: skr.NewVerifier(nil)}})

	verify := func(jws string, keys []jose.JSONWebKey) string {
		t.Helper()
		sig, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		x5t, _ := sig.Signatures[0].Header.ExtraHeaders["x5t#S256"].(string)
		for _, k := range keys {
			if k.KeyID == x5t {
				if !k.IsPublic() || len(k.Certificates) != 1 || !k.Valid() {
					t.Fatalf("published key %s is not a public key with its certificate", k.KeyID)
				}
				if _, err := sig.Verify(k.Key); err != nil {
					t.Fatalf("response signed by %s does not verify with the published key: %v", x5t, err)
				}
				return x5t
			}
		}
		t.Fatalf("response signed by %q, which is not among the %d published keys", x5t, len(keys))
		return ""
	}
	first, err := a.SignRelease(ctx, []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.SignRelease(ctx, []byte(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := b.ReleaseSigners(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("%d published keys, %v; want 1", len(keys), err)
	}
	k1 := verify(first, keys)
	if verify(again, keys) != k1 {
		t.Fatal("a second node (or a restart) signs with another key: the signing key is not kept")
	}

	k2, err := b.RotateReleaseSigner(ctx)
	if err != nil || k2 == k1 {
		t.Fatalf("rotate: %q, %v", k2, err)
	}
	after, err := a.SignRelease(ctx, []byte(`{"n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ = a.ReleaseSigners(ctx)
	if len(keys) != 2 || verify(after, keys) != k2 || verify(first, keys) != k1 {
		t.Fatalf("after rotation: %d published keys; want the retired and the active one, active signing", len(keys))
	}
	clk.Advance(31 * 24 * time.Hour)
	k3, err := a.RotateReleaseSigner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ = a.ReleaseSigners(ctx)
	if len(keys) != 2 || keys[0].KeyID != k2 || keys[1].KeyID != k3 {
		t.Fatalf("31 days after the first rotation: published %v; want %s (retired now) and %s", keys, k2, k3)
	}
}
