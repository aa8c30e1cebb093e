package barrier

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/shamir"
	"github.com/keyward/keyward/internal/storage"
)

// This file: the seal (initialize, unseal, seal) and the root key.

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
	// Type is "shamir", "pkcs11" (hsmseal.go) or "dev". A dev barrier has one share, which the dev
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
	views viewCache

	wrapper KeyWrapper // the pkcs11 seal's HSM key (hsmseal.go)
}

// New returns a sealed barrier over backend.
func New(backend storage.Backend) *Barrier {
	b := &Barrier{backend: backend, keyrings: map[string]*keyring{}, aeads: aeadCache{m: map[aeadKey]cipher.AEAD{}},
		views: viewCache{m: map[viewKey]*View{}}}
	b.views.all = &View{b: b}
	b.views.sys = &View{b: b, scope: SystemScope}
	return b
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
	if cfg.Type != "shamir" && cfg.Type != "dev" && cfg.Type != SealPKCS11 {
		return nil, fmt.Errorf("barrier: unknown seal type %q", cfg.Type)
	}
	cfg.Created = now.UTC()

	uk := randomKey()
	defer clear(uk)
	rk := randomKey()
	defer clear(rk)
	sysRing := &keyring{Terms: []term{{Term: 1, Key: randomKey(), Created: now.UTC()}}}
	defer sysRing.wipe()

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
	if cfg.Type == SealPKCS11 {
		return b.initializePKCS11(ctx, cfg, rk, func(tx storage.Tx) error {
			if _, err := tx.Get(keySealConfig); err == nil {
				return ErrAlreadyInitialized
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := tx.Put(keySealConfig, cfgJSON); err != nil {
				return err
			}
			return tx.Put(keyringPrefix+SystemScope, sealedRing)
		})
	}
	sealedRoot, err := sealWith(uk, []byte(keyRoot), rk)
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
	if cfg.Type == SealPKCS11 {
		st, err := b.Status(ctx)
		if err != nil || !st.Sealed {
			return st, err
		}
		return st, ErrRecoveryShares // UnsealWithHSM opens it
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
