//go:build cgo

package barrier

import (
	"context"
	"errors"
	"testing"

	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/shamir"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/mem"
)

// TestPKCS11Seal: the root key wrapped by a real SoftHSM2 token's AES key;
// the barrier unseals with the token alone, and the recovery key its
// shares rebuild opens no stored value.
func TestPKCS11Seal(t *testing.T) {
	ctx := context.Background()
	h, _ := hsmtest.Open(t)
	sk, err := h.SealKey(ctx, hsm.SealKeyID)
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := h.ObjectAttributes(ctx, hsm.SealKeyID)
	if err != nil || attrs["CKA_EXTRACTABLE"] || !attrs["CKA_SENSITIVE"] {
		t.Fatalf("seal key attributes %v %v", attrs, err)
	}
	backend := mem.New()
	b := New(backend)
	if _, err := b.Initialize(ctx, SealConfig{Type: SealPKCS11, Shares: 3, Threshold: 2}, t0); !errors.Is(err, ErrNoWrapper) {
		t.Fatalf("pkcs11 init without an HSM: %v", err)
	}
	b.SetWrapper(sk)
	shares, err := b.Initialize(ctx, SealConfig{Type: SealPKCS11, Shares: 3, Threshold: 2}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UnsealWithHSM(ctx); err != nil || b.Sealed() {
		t.Fatalf("unseal with the HSM: %v", err)
	}
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put("sys/x", []byte("data")) }); err != nil {
		t.Fatal(err)
	}
	b.Seal()

	// A fresh barrier over the same storage (a restart) with the token.
	b2 := New(backend)
	b2.SetWrapper(sk)
	if _, err := b2.Unseal(ctx, shares[0]); !errors.Is(err, ErrRecoveryShares) {
		t.Fatalf("recovery share as unseal share: %v", err)
	}
	if _, err := b2.UnsealWithHSM(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b2.View(ctx, func(tx Tx) error {
		v, err := tx.Get("sys/x")
		if err != nil || string(v) != "data" {
			t.Fatalf("after HSM unseal: %q %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The recovery key decrypts nothing: try it on every stored value with
	// its own storage key as associated data (how values are sealed).
	rk, err := shamir.Combine(shares[:2])
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	if err := backend.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("", "", func(k string, v []byte) bool {
			if _, err := openWith(rk, []byte(k), v); err == nil && k != keyRecovery {
				opened++
			}
			if k == keyRoot {
				t.Error("a pkcs11 barrier stores a share-sealed root key")
			}
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	if opened != 0 {
		t.Fatalf("the recovery key opened %d stored values", opened)
	}
	// Another token cannot unseal it.
	h2, _ := hsmtest.Open(t)
	other, _ := h2.SealKey(ctx, hsm.SealKeyID)
	b3 := New(backend)
	b3.SetWrapper(other)
	if _, err := b3.UnsealWithHSM(ctx); err == nil {
		t.Fatal("another token's seal key unsealed the barrier")
	}
}
