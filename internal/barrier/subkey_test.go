package barrier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

// TestSubkeyDerivationUnchanged seals a value the way the barrier always
// has (hkdf.Key over the term key, in one call) and checks that the barrier,
// which now derives through a per-term PRK and a cache, opens it, before and
// after the cache is full, and that its own blobs open the old way.
func TestSubkeyDerivationUnchanged(t *testing.T) {
	ctx := context.Background()
	b, backend := unsealed(t)
	const scope = "v-0123456789abcdef"
	if err := b.EnsureScope(ctx, scope, t0); err != nil {
		t.Fatal(err)
	}
	kr, err := b.ring(ctx, nil, scope)
	if err != nil {
		t.Fatal(err)
	}
	tm := kr.active()
	oldAEAD := func(key string) cipher.AEAD {
		sub, err := hkdf.Key(sha256.New, tm.Key, nil, "keyward/barrier/v1\x00"+key, keyLen)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := aes.NewCipher(sub)
		a, _ := cipher.NewGCMWithRandomNonce(block)
		return a
	}
	header := make([]byte, headerLen)
	header[0] = blobVersion
	binary.BigEndian.PutUint32(header[1:], tm.Term)

	for i := range maxCachedAEADs + 10 {
		key := fmt.Sprintf("v/0123456789abcdef/s/v/x%d/1", i)
		want := fmt.Sprintf("value %d", i)
		blob := oldAEAD(key).Seal(append([]byte(nil), header...), nil, []byte(want), aad(header, key))
		if err := backend.Update(ctx, func(tx storage.Tx) error { return tx.Put(key, blob) }); err != nil {
			t.Fatal(err)
		}
		for range 2 { // derived, then cached
			var got []byte
			if err := b.View(ctx, func(tx Tx) error { got, err = tx.Get(key); return err }); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if string(got) != want {
				t.Fatalf("%s: got %q, want %q", key, got, want)
			}
		}
	}
	if n := len(b.aeads.m); n > maxCachedAEADs {
		t.Fatalf("subkey cache holds %d entries, more than %d", n, maxCachedAEADs)
	}

	const key = "v/0123456789abcdef/s/n/new"
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put(key, []byte("fresh")) }); err != nil {
		t.Fatal(err)
	}
	var blob []byte
	backend.View(ctx, func(tx storage.Tx) error { blob, err = tx.Get(key); return err })
	plain, err := oldAEAD(key).Open(nil, nil, blob[headerLen:], aad(blob[:headerLen], key))
	if err != nil || string(plain) != "fresh" {
		t.Fatalf("a new blob does not open with the original derivation: %q, %v", plain, err)
	}
}

// TestSealEmptiesSubkeyCache: no derived key survives Seal.
func TestSealEmptiesSubkeyCache(t *testing.T) {
	ctx := context.Background()
	b, _ := unsealed(t)
	b.EnsureScope(ctx, "v-a", t0)
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put("v/a/x", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if len(b.aeads.m) == 0 {
		t.Fatal("expected a cached subkey")
	}
	_, gen := b.aeads.get(aeadKey{})
	b.Seal()
	if len(b.aeads.m) != 0 {
		t.Fatalf("%d subkeys cached after Seal", len(b.aeads.m))
	}
	b.aeads.put(aeadKey{key: "late"}, nil, gen) // a derivation that raced Seal
	if len(b.aeads.m) != 0 {
		t.Fatal("a derivation started before Seal was cached after it")
	}
	if err := b.View(ctx, func(tx Tx) error { _, err := tx.Get("v/a/x"); return err }); err != ErrSealed {
		t.Fatalf("read after seal: %v", err)
	}
}
