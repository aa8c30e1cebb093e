package barrier

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// This file: keyrings, one per scope, each a list of terms sealed by the root key.

type keyring struct {
	Terms []term `json:"terms"`
}

type term struct {
	Term    uint32    `json:"term"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`

	// prk is HKDF-Extract(SHA-256, salt = nil, Key), set by prepare before
	// the keyring is shared: a subkey is then one HKDF-Expand.
	prk []byte
}

func (k *keyring) active() *term { return &k.Terms[len(k.Terms)-1] }

func (k *keyring) find(t uint32) *term {
	for i := range k.Terms {
		if k.Terms[i].Term == t {
			return &k.Terms[i]
		}
	}
	return nil
}

func (k *keyring) wipe() {
	for i := range k.Terms {
		clear(k.Terms[i].Key)
		clear(k.Terms[i].prk)
	}
}

// prepare computes each term's HKDF pseudorandom key. It runs before the
// keyring is published in Barrier.keyrings, so readers never see it change.
func (k *keyring) prepare() error {
	for i := range k.Terms {
		t := &k.Terms[i]
		if t.prk != nil {
			continue
		}
		prk, err := hkdf.Extract(sha256.New, t.Key, nil)
		if err != nil {
			return err
		}
		t.prk = prk
	}
	return nil
}

// EnsureScope creates the keyring of scope if it does not exist yet.
func (b *Barrier) EnsureScope(ctx context.Context, scope string, now time.Time) error {
	if _, err := b.ring(ctx, nil, scope); err == nil {
		return nil
	} else if !errors.Is(err, ErrNoScope) {
		return err
	}
	return b.addTerm(ctx, scope, now)
}

// RotateScope adds a new term to the keyring of scope (creating it if
// needed). New writes use the new term; old values stay readable.
func (b *Barrier) RotateScope(ctx context.Context, scope string, now time.Time) error {
	return b.addTerm(ctx, scope, now)
}

func (b *Barrier) addTerm(ctx context.Context, scope string, now time.Time) error {
	if strings.ContainsAny(scope, "/") || scope == "" {
		return fmt.Errorf("barrier: invalid scope name")
	}
	b.mu.RLock()
	rk := b.root
	b.mu.RUnlock()
	if rk == nil {
		return ErrSealed
	}
	storageKey := keyringPrefix + scope
	var updated *keyring
	err := b.backend.Update(ctx, func(tx storage.Tx) error {
		kr := &keyring{}
		raw, err := tx.Get(storageKey)
		switch {
		case err == nil:
			plain, err := b.openRoot(storageKey, raw)
			if err != nil {
				return err
			}
			err = json.Unmarshal(plain, kr)
			clear(plain)
			if err != nil {
				return ErrCorrupt
			}
		case errors.Is(err, storage.ErrNotFound):
		default:
			return err
		}
		next := uint32(1)
		if len(kr.Terms) > 0 {
			next = kr.active().Term + 1
		}
		kr.Terms = append(kr.Terms, term{Term: next, Key: randomKey(), Created: now.UTC()})
		plain, err := json.Marshal(kr)
		if err != nil {
			return err
		}
		defer clear(plain)
		sealed, err := b.sealRoot(storageKey, plain)
		if err != nil {
			return err
		}
		if err := kr.prepare(); err != nil {
			return err
		}
		updated = kr
		return tx.Put(storageKey, sealed)
	})
	if err != nil {
		return err
	}
	// The replaced keyring is not wiped: a request running concurrently may
	// still be using one of its term keys. The garbage collector reclaims it.
	b.mu.Lock()
	b.keyrings[scope] = updated
	b.mu.Unlock()
	return nil
}

// ring returns the cached keyring of scope, loading it when needed. A
// keyring is loaded through tx when the caller is inside a transaction
// (a nested transaction could deadlock a backend), else in its own.
func (b *Barrier) ring(ctx context.Context, tx storage.Tx, scope string) (*keyring, error) {
	b.mu.RLock()
	sealed := b.root == nil
	kr := b.keyrings[scope]
	b.mu.RUnlock()
	if sealed {
		return nil, ErrSealed
	}
	if kr != nil {
		return kr, nil
	}
	return b.loadRing(ctx, tx, scope)
}

func (b *Barrier) loadRing(ctx context.Context, tx storage.Tx, scope string) (*keyring, error) {
	storageKey := keyringPrefix + scope
	var raw []byte
	var err error
	if tx != nil {
		raw, err = tx.Get(storageKey)
	} else {
		err = b.backend.View(ctx, func(tx storage.Tx) error {
			v, err := tx.Get(storageKey)
			raw = v
			return err
		})
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoScope
	}
	if err != nil {
		return nil, err
	}
	plain, err := b.openRoot(storageKey, raw)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	kr := &keyring{}
	if err := json.Unmarshal(plain, kr); err != nil || len(kr.Terms) == 0 {
		return nil, ErrCorrupt
	}
	if err := kr.prepare(); err != nil {
		kr.wipe()
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.root == nil {
		kr.wipe()
		return nil, ErrSealed
	}
	if cur := b.keyrings[scope]; cur != nil && cur.active().Term >= kr.active().Term {
		kr.wipe()
		return cur, nil
	}
	b.keyrings[scope] = kr
	return kr, nil
}

// dropScope deletes the keyring of scope and forgets it, and every cached
// subkey with it. Values still sealed under it can never be opened again.
func (b *Barrier) dropScope(ctx context.Context, scope string) error {
	if scope == SystemScope {
		return fmt.Errorf("barrier: the system keyring cannot be dropped")
	}
	if err := b.backend.Update(ctx, func(tx storage.Tx) error {
		return tx.Delete(keyringPrefix + scope)
	}); err != nil {
		return err
	}
	// As in addTerm, the forgotten keyring is not wiped: a request running
	// concurrently may still hold one of its terms.
	b.mu.Lock()
	delete(b.keyrings, scope)
	b.mu.Unlock()
	b.aeads.clear()
	return nil
}
