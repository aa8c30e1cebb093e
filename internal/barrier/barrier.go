// Package barrier is Keyward's root of trust and the envelope encryption
// between the domain and storage.
//
// Key hierarchy (CRYPTO.md §5.3):
//
//	unseal key UK (never stored; Shamir-split into shares shown once at init)
//	 └─ root key RK (AES-256), stored as AES-GCM(UK, RK) under sys/barrier/root
//	     └─ one keyring per scope (the system scope, each vault, each tenant),
//	        stored as AES-GCM(RK, keyring) under sys/barrier/keyring/{scope}
//	         └─ every stored value: AES-256-GCM under a per-storage-key subkey
//	            HKDF-SHA256(scope key, info = storage key), the storage key as AAD
//
// Deriving a subkey per storage key means no single AES key ever encrypts
// more than the handful of writes made to one name, so the 2^32 random-nonce
// bound of GCM is never approached, and a blob copied under another name
// fails to open twice over (different key, different AAD).
//
// Derivation is kept off the hot path two ways, neither of which changes a
// byte of what is stored: each term's HKDF-Extract is computed once when its
// keyring is loaded (a subkey is then one HKDF-Expand), and the AEADs of
// recently used storage keys are kept in a small bounded cache
// (maxCachedAEADs), emptied on Seal. The cache holds nothing a sealed barrier
// may keep: it lives exactly as long as the term keys it is derived from.
//
// The barrier never hands plaintext to storage and never logs key material.
// While sealed it holds no key and every read or write fails with ErrSealed.
package barrier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/shamir"
	"github.com/keyward/keyward/internal/storage"
)

var (
	// ErrSealed is returned by every operation that needs the root key while
	// the barrier is sealed.
	ErrSealed = errors.New("barrier: sealed")
	// ErrNotInitialized is returned when the barrier has never been initialized.
	ErrNotInitialized = errors.New("barrier: not initialized")
	// ErrAlreadyInitialized is returned by Initialize on an initialized barrier.
	ErrAlreadyInitialized = errors.New("barrier: already initialized")
	// ErrBadShares means the shares given did not reconstruct the unseal key.
	// Unseal progress is reset.
	ErrBadShares = errors.New("barrier: the unseal shares given do not reconstruct the unseal key")
	// ErrDuplicateShare means a share was given twice in one unseal attempt.
	ErrDuplicateShare = errors.New("barrier: share already given")
	// ErrMalformedShare means a share has the wrong length or encoding.
	ErrMalformedShare = errors.New("barrier: malformed share")
	// ErrCorrupt means a stored value failed authentication: it was changed,
	// moved to another name, or written under another key.
	ErrCorrupt = errors.New("barrier: stored value failed authentication")
	// ErrNoScope means a value was written to a scope that has no keyring.
	ErrNoScope = errors.New("barrier: scope has no keyring")
	// ErrReserved means a caller tried to read or write the barrier's own keys.
	ErrReserved = errors.New("barrier: key is reserved")
)

const (
	keySealConfig = "sys/barrier/seal-config"
	keyRoot       = "sys/barrier/root"
	keyringPrefix = "sys/barrier/keyring/"
	reservedPfx   = "sys/barrier/"

	blobVersion = 1
	headerLen   = 1 + 4 // version, term
	keyLen      = 32

	// SystemScope holds Keyward's own records (vault registry, directory).
	SystemScope = "sys"
)

// SealConfig is stored in plaintext: it says how to unseal, not what with.
type SealConfig struct {
	// Type is "shamir" or "dev". A dev barrier has one share, which the dev
	// server keeps in a file beside the database: it protects nothing
	// against someone who can read the data directory.
	Type      string    `json:"type"`
	Shares    int       `json:"shares"`
	Threshold int       `json:"threshold"`
	Created   time.Time `json:"created"`
}

// Status describes the barrier to operators.
type Status struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Type        string `json:"type,omitempty"`
	Shares      int    `json:"n"`
	Threshold   int    `json:"t"`
	Progress    int    `json:"progress"`
}

// Barrier is safe for concurrent use.
type Barrier struct {
	backend storage.Backend

	mu       sync.RWMutex
	cfg      *SealConfig // nil until known
	root     []byte      // nil while sealed
	keyrings map[string]*keyring
	progress [][]byte // shares given so far in the current unseal attempt

	aeads aeadCache
}

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

// New returns a sealed barrier over backend.
func New(backend storage.Backend) *Barrier {
	return &Barrier{backend: backend, keyrings: map[string]*keyring{}, aeads: aeadCache{m: map[aeadKey]cipher.AEAD{}}}
}

// Status reports whether the barrier is initialized and sealed.
func (b *Barrier) Status(ctx context.Context) (Status, error) {
	cfg, err := b.sealConfig(ctx)
	if err != nil {
		return Status{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if cfg == nil {
		return Status{Sealed: true}, nil
	}
	return Status{
		Initialized: true,
		Sealed:      b.root == nil,
		Type:        cfg.Type,
		Shares:      cfg.Shares,
		Threshold:   cfg.Threshold,
		Progress:    len(b.progress),
	}, nil
}

// Ping reads from storage, to tell whether it is reachable.
func (b *Barrier) Ping(ctx context.Context) error {
	return b.backend.View(ctx, func(tx storage.Tx) error {
		_, err := tx.Get(keySealConfig)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	})
}

func (b *Barrier) sealConfig(ctx context.Context) (*SealConfig, error) {
	b.mu.RLock()
	cfg := b.cfg
	b.mu.RUnlock()
	if cfg != nil {
		return cfg, nil
	}
	var raw []byte
	err := b.backend.View(ctx, func(tx storage.Tx) error {
		v, err := tx.Get(keySealConfig)
		raw = v
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg = new(SealConfig)
	if err := json.Unmarshal(raw, cfg); err != nil {
		return nil, fmt.Errorf("barrier: decoding seal config: %w", err)
	}
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
	return cfg, nil
}

// Initialize creates the root key and the system keyring and returns the
// unseal key split into cfg.Shares shares, cfg.Threshold of which unseal.
// With one share the share is the unseal key itself. The shares are never
// stored: the caller shows them once. The barrier stays sealed.
func (b *Barrier) Initialize(ctx context.Context, cfg SealConfig, now time.Time) ([][]byte, error) {
	switch {
	case cfg.Shares == 1 && cfg.Threshold == 1:
	case cfg.Shares < 1 || cfg.Shares > 255:
		return nil, fmt.Errorf("barrier: shares must be between 1 and 255")
	case cfg.Threshold < 2 || cfg.Threshold > cfg.Shares:
		return nil, fmt.Errorf("barrier: threshold must be between 2 and the number of shares (or shares = threshold = 1)")
	}
	if cfg.Type != "shamir" && cfg.Type != "dev" {
		return nil, fmt.Errorf("barrier: unknown seal type %q", cfg.Type)
	}
	cfg.Created = now.UTC()

	uk := randomKey()
	defer clear(uk)
	rk := randomKey()
	defer clear(rk)
	sysRing := &keyring{Terms: []term{{Term: 1, Key: randomKey(), Created: now.UTC()}}}
	defer sysRing.wipe()

	sealedRoot, err := sealWith(uk, []byte(keyRoot), rk)
	if err != nil {
		return nil, err
	}
	ringJSON, err := json.Marshal(sysRing)
	if err != nil {
		return nil, err
	}
	defer clear(ringJSON)
	sealedRing, err := sealWith(rk, []byte(keyringPrefix+SystemScope), ringJSON)
	if err != nil {
		return nil, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	err = b.backend.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(keySealConfig); err == nil {
			return ErrAlreadyInitialized
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := tx.Put(keySealConfig, cfgJSON); err != nil {
			return err
		}
		if err := tx.Put(keyRoot, sealedRoot); err != nil {
			return err
		}
		return tx.Put(keyringPrefix+SystemScope, sealedRing)
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.cfg = &cfg
	b.mu.Unlock()

	if cfg.Shares == 1 {
		return [][]byte{append([]byte(nil), uk...)}, nil
	}
	return shamir.Split(uk, cfg.Shares, cfg.Threshold)
}

// Unseal adds one share to the current unseal attempt. When the threshold
// is reached it reconstructs the unseal key and opens the root key; if that
// fails the attempt is reset and ErrBadShares returned. A share given twice
// in one attempt is refused with ErrDuplicateShare and does not count.
func (b *Barrier) Unseal(ctx context.Context, share []byte) (Status, error) {
	cfg, err := b.sealConfig(ctx)
	if err != nil {
		return Status{}, err
	}
	if cfg == nil {
		return Status{Sealed: true}, ErrNotInitialized
	}
	var sealedRoot []byte
	err = b.backend.View(ctx, func(tx storage.Tx) error {
		v, err := tx.Get(keyRoot)
		sealedRoot = v
		return err
	})
	if err != nil {
		return Status{}, fmt.Errorf("barrier: reading root key: %w", err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	status := func() Status {
		return Status{Initialized: true, Sealed: b.root == nil, Type: cfg.Type,
			Shares: cfg.Shares, Threshold: cfg.Threshold, Progress: len(b.progress)}
	}
	if b.root != nil {
		return status(), nil
	}
	wantLen := keyLen
	if cfg.Shares > 1 {
		wantLen = keyLen + 1
	}
	if len(share) != wantLen {
		return status(), ErrMalformedShare
	}
	if cfg.Shares > 1 {
		for _, s := range b.progress {
			if s[keyLen] == share[keyLen] { // same x coordinate
				return status(), ErrDuplicateShare
			}
		}
	}
	b.progress = append(b.progress, append([]byte(nil), share...))
	if len(b.progress) < cfg.Threshold {
		return status(), nil
	}

	var uk []byte
	if cfg.Shares == 1 {
		uk = append([]byte(nil), b.progress[0]...)
	} else {
		uk, err = shamir.Combine(b.progress)
	}
	b.resetProgress()
	if err != nil {
		return status(), ErrBadShares
	}
	defer clear(uk)
	rk, err := openWith(uk, []byte(keyRoot), sealedRoot)
	if err != nil {
		return status(), ErrBadShares
	}
	b.root = rk
	return status(), nil
}

// ResetUnseal discards the shares given so far.
func (b *Barrier) ResetUnseal() {
	b.mu.Lock()
	b.resetProgress()
	b.mu.Unlock()
}

func (b *Barrier) resetProgress() {
	for _, s := range b.progress {
		clear(s)
	}
	b.progress = nil
}

// Seal forgets the root key and every scope key. Reads and writes fail with
// ErrSealed until the barrier is unsealed again.
func (b *Barrier) Seal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.root)
	b.root = nil
	for name, kr := range b.keyrings {
		kr.wipe()
		delete(b.keyrings, name)
	}
	b.aeads.clear()
	b.resetProgress()
}

// Sealed reports whether the barrier currently holds no root key.
func (b *Barrier) Sealed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.root == nil
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

func (b *Barrier) sealRoot(aad string, plain []byte) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.root == nil {
		return nil, ErrSealed
	}
	return sealWith(b.root, []byte(aad), plain)
}

func (b *Barrier) openRoot(aad string, blob []byte) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.root == nil {
		return nil, ErrSealed
	}
	return openWith(b.root, []byte(aad), blob)
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

// ScopeOf returns the keyring scope a storage key belongs to: "v/{id}/..."
// keys belong to vault scope "v-{id}", "t/{id}/..." to tenant scope
// "t-{id}", everything else to SystemScope.
func ScopeOf(key string) string {
	if len(key) > 2 && key[1] == '/' && (key[0] == 'v' || key[0] == 't') {
		if i := strings.IndexByte(key[2:], '/'); i > 0 {
			return key[:1] + "-" + key[2:2+i]
		}
	}
	return SystemScope
}

// View runs fn in a read-only transaction whose values are decrypted.
func (b *Barrier) View(ctx context.Context, fn func(Tx) error) error {
	if b.Sealed() {
		return ErrSealed
	}
	return b.backend.View(ctx, func(tx storage.Tx) error {
		return fn(&sealedTx{ctx: ctx, b: b, tx: tx})
	})
}

// Update runs fn in a read-write transaction whose values are encrypted.
// As with storage.Backend.Update, fn may run more than once.
func (b *Barrier) Update(ctx context.Context, fn func(Tx) error) error {
	if b.Sealed() {
		return ErrSealed
	}
	return b.backend.Update(ctx, func(tx storage.Tx) error {
		return fn(&sealedTx{ctx: ctx, b: b, tx: tx})
	})
}

// Tx is a storage transaction seen through the barrier: values go in and
// come out as plaintext, and are sealed in between.
type Tx interface {
	Get(key string) ([]byte, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// Scan is storage.Tx.Scan with decrypted values. A value that fails to
	// decrypt ends the scan with ErrCorrupt.
	Scan(prefix, after string, fn func(key string, value []byte) bool) error
	// ScanKeys is Scan without decrypting values, for listings that only
	// need names.
	ScanKeys(prefix, after string, fn func(key string) bool) error
}

type sealedTx struct {
	ctx context.Context
	b   *Barrier
	tx  storage.Tx
}

func checkKey(key string) error {
	if strings.HasPrefix(key, reservedPfx) {
		return ErrReserved
	}
	return nil
}

func (t *sealedTx) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	blob, err := t.tx.Get(key)
	if err != nil {
		return nil, err
	}
	return t.b.openIn(t.ctx, t.tx, ScopeOf(key), key, blob)
}

func (t *sealedTx) Put(key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	blob, err := t.b.sealIn(t.ctx, t.tx, ScopeOf(key), key, value)
	if err != nil {
		return err
	}
	return t.tx.Put(key, blob)
}

func (t *sealedTx) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return t.tx.Delete(key)
}

func (t *sealedTx) Scan(prefix, after string, fn func(string, []byte) bool) error {
	if err := checkKey(prefix); err != nil && prefix != "" {
		return err
	}
	var openErr error
	err := t.tx.Scan(prefix, after, func(k string, blob []byte) bool {
		if strings.HasPrefix(k, reservedPfx) {
			return true
		}
		plain, err := t.b.openIn(t.ctx, t.tx, ScopeOf(k), k, blob)
		if err != nil {
			openErr = err
			return false
		}
		return fn(k, plain)
	})
	if err != nil {
		return err
	}
	return openErr
}

func (t *sealedTx) ScanKeys(prefix, after string, fn func(string) bool) error {
	return t.tx.Scan(prefix, after, func(k string, _ []byte) bool {
		if strings.HasPrefix(k, reservedPfx) {
			return true
		}
		return fn(k)
	})
}

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
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	if a, err = cipher.NewGCMWithRandomNonce(block); err != nil {
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
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, plain, aad), nil
}

func openWith(key, aad, blob []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, blob, aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

func randomKey() []byte {
	k := make([]byte, keyLen)
	rand.Read(k) // never returns an error (crypto/rand, Go 1.24+)
	return k
}
