package barrier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/keyward/keyward/internal/storage"
)

// This file: the envelope format of stored values and blobs, and the
// derivation and cache of per-storage-key subkeys.

// seal encrypts value for storage under key:
//
//	version(1) | term(4, big endian) | nonce(12) | ciphertext | tag(16)
//
// with AES-256-GCM under HKDF-SHA256(term key, info = "keyward/barrier/v1\x00" + key)
// and the header and key as additional data.
func (b *Barrier) sealIn(ctx context.Context, tx storage.Tx, scope, key string, value []byte) ([]byte, error) {
	kr, err := b.ring(ctx, tx, scope)
	if err != nil {
		return nil, err
	}
	t := kr.active()
	header := make([]byte, headerLen, headerLen+12+len(value)+16)
	header[0] = blobVersion
	binary.BigEndian.PutUint32(header[1:], t.Term)
	aead, err := b.subkeyAEAD(t, key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(header, nil, value, aad(header, key)), nil
}

func (b *Barrier) openIn(ctx context.Context, tx storage.Tx, scope, key string, blob []byte) ([]byte, error) {
	if len(blob) < headerLen+12+16 || blob[0] != blobVersion {
		return nil, ErrCorrupt
	}
	kr, err := b.ring(ctx, tx, scope)
	if err != nil {
		return nil, err
	}
	termNo := binary.BigEndian.Uint32(blob[1:headerLen])
	t := kr.find(termNo)
	if t == nil {
		// Another node may have rotated the keyring: reload once.
		if kr, err = b.loadRing(ctx, tx, scope); err != nil {
			return nil, err
		}
		if t = kr.find(termNo); t == nil {
			return nil, ErrCorrupt
		}
	}
	aead, err := b.subkeyAEAD(t, key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, blob[headerLen:], aad(blob[:headerLen], key))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// SealBlob encrypts plain for use outside storage (backup blobs) with the
// keyring of scope; label binds the blob to its purpose, like a storage key
// does for stored values. Only OpenBlob with the same scope and label opens it.
func (b *Barrier) SealBlob(ctx context.Context, scope, label string, plain []byte) ([]byte, error) {
	return b.sealIn(ctx, nil, scope, "blob\x00"+label, plain)
}

// OpenBlob decrypts a blob made by SealBlob; any mismatch is ErrCorrupt.
func (b *Barrier) OpenBlob(ctx context.Context, scope, label string, blob []byte) ([]byte, error) {
	return b.openIn(ctx, nil, scope, "blob\x00"+label, blob)
}

func aad(header []byte, key string) []byte {
	a := make([]byte, 0, len(header)+len(key))
	return append(append(a, header...), key...)
}

// subkeyAEAD returns AES-256-GCM (random nonces) under the subkey of
// storageKey in term t: HKDF-SHA256(t.Key, salt = nil,
// info = "keyward/barrier/v1\x00" + storageKey), from the cache when it can.
func (b *Barrier) subkeyAEAD(t *term, storageKey string) (cipher.AEAD, error) {
	ck := aeadKey{t: t, key: storageKey}
	a, gen := b.aeads.get(ck)
	if a != nil {
		return a, nil
	}
	if t.prk == nil {
		return nil, ErrSealed // a keyring is always prepared before it is shared
	}
	sub, err := hkdf.Expand(sha256.New, t.prk, "keyward/barrier/v1\x00"+storageKey, keyLen)
	if err != nil {
		return nil, err
	}
	defer clear(sub)
	if a, err = newAEAD(sub); err != nil {
		return nil, err
	}
	b.aeads.put(ck, a, gen)
	return a, nil
}

// maxCachedAEADs bounds the subkey cache: about 1 KiB each (expanded AES
// key and GHASH table), so a few MiB whatever the number of stored values.
const maxCachedAEADs = 4096

// aeadKey names a subkey: the term (by identity: the pointer keeps that
// term's key material, never a copy) and the storage key.
type aeadKey struct {
	t   *term
	key string
}

// aeadCache is a bounded map of derived AEADs. A full cache drops an
// arbitrary entry per insertion, which keeps the hot keys (read on every
// request) with high probability and costs nothing to maintain.
type aeadCache struct {
	mu  sync.RWMutex
	m   map[aeadKey]cipher.AEAD
	gen uint64 // incremented by clear
}

// get returns the cached AEAD for k (or nil) and the cache generation, to
// pass to put.
func (c *aeadCache) get(k aeadKey) (cipher.AEAD, uint64) {
	c.mu.RLock()
	a, gen := c.m[k], c.gen
	c.mu.RUnlock()
	return a, gen
}

// put caches a, unless the cache was cleared (the barrier sealed) since the
// get that returned gen: a derivation racing Seal must not outlive it.
func (c *aeadCache) put(k aeadKey, a cipher.AEAD, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= maxCachedAEADs {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = a
}

func (c *aeadCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

// sealWith encrypts plain under key with a random nonce; used for the root
// key and keyrings, which are written rarely.
func sealWith(key, aad, plain []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, plain, aad), nil
}

func openWith(key, aad, blob []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, blob, aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// newAEAD is AES-256-GCM under key with random nonces, the one cipher of
// the barrier.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

func randomKey() []byte {
	k := make([]byte, keyLen)
	rand.Read(k) // never returns an error (crypto/rand, Go 1.24+)
	return k
}
