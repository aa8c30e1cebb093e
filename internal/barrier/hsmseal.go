package barrier

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyward/keyward/internal/shamir"
	"github.com/keyward/keyward/internal/storage"
)

// This file: the PKCS#11 seal (CRYPTO.md §5.3). A KeyWrapper — an AES key
// in an HSM that never leaves it — encrypts the root key, so the node
// unseals itself at start. The Shamir shares made at initialization (or
// the unseal shares of a Shamir barrier migrated to the HSM) become
// recovery shares: they authorize seal migration, and they cannot
// decrypt anything (nothing is stored under the key they rebuild except a
// check value).

// SealPKCS11 is the seal type of a barrier whose root key an HSM wraps.
const SealPKCS11 = "pkcs11"

const (
	keyRootWrapped = "sys/barrier/root-wrapped"
	keyRecovery    = "sys/barrier/recovery-check"
	recoveryAAD    = "sys/barrier/recovery-check"
)

// recoveryPlain is what the recovery check encrypts: a constant, so a
// recovery key is verified without anything secret behind it.
var recoveryPlain = []byte("keyward recovery key check v1")

// KeyWrapper encrypts small secrets with a key held outside Keyward.
type KeyWrapper interface {
	// Name identifies the wrapping key (token and key label) for logs.
	Name() string
	Wrap(ctx context.Context, plain, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, blob, aad []byte) ([]byte, error)
}

var (
	// ErrNoWrapper means a pkcs11 barrier is used without an HSM configured.
	ErrNoWrapper = errors.New("barrier: this barrier is sealed by an HSM, and no HSM is configured")
	// ErrRecoveryShares means Unseal got a share of a pkcs11 barrier:
	// recovery shares authorize seal migration but cannot unseal.
	ErrRecoveryShares = errors.New("barrier: this barrier unseals with its HSM; recovery shares cannot decrypt the root key")
)

// SetWrapper gives the barrier the HSM key of the pkcs11 seal.
func (b *Barrier) SetWrapper(w KeyWrapper) {
	b.mu.Lock()
	b.wrapper = w
	b.mu.Unlock()
}

func (b *Barrier) getWrapper() KeyWrapper {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wrapper
}

// initializePKCS11 is Initialize for the pkcs11 seal: the root key is
// wrapped by the HSM and the returned shares are recovery shares.
func (b *Barrier) initializePKCS11(ctx context.Context, cfg SealConfig, rk []byte, put func(tx storage.Tx) error) ([][]byte, error) {
	w := b.getWrapper()
	if w == nil {
		return nil, ErrNoWrapper
	}
	wrapped, err := w.Wrap(ctx, rk, []byte(keyRootWrapped))
	if err != nil {
		return nil, fmt.Errorf("barrier: wrapping the root key in the HSM: %w", err)
	}
	recovery := randomKey()
	defer clear(recovery)
	check, err := sealWith(recovery, []byte(recoveryAAD), recoveryPlain)
	if err != nil {
		return nil, err
	}
	err = b.backend.Update(ctx, func(tx storage.Tx) error {
		if err := put(tx); err != nil {
			return err
		}
		if err := tx.Put(keyRootWrapped, wrapped); err != nil {
			return err
		}
		return tx.Put(keyRecovery, check)
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.cfg = &cfg
	b.mu.Unlock()
	if cfg.Shares == 1 {
		return [][]byte{append([]byte(nil), recovery...)}, nil
	}
	return shamir.Split(recovery, cfg.Shares, cfg.Threshold)
}

// UnsealWithHSM opens the root key of a pkcs11 barrier with its HSM. It
// is a no-op on an unsealed barrier.
func (b *Barrier) UnsealWithHSM(ctx context.Context) (Status, error) {
	cfg, err := b.sealConfig(ctx)
	if err != nil {
		return Status{}, err
	}
	if cfg == nil {
		return Status{Sealed: true}, ErrNotInitialized
	}
	if cfg.Type != SealPKCS11 {
		return Status{}, fmt.Errorf("barrier: the seal is %s, not %s", cfg.Type, SealPKCS11)
	}
	w := b.getWrapper()
	if w == nil {
		return Status{}, ErrNoWrapper
	}
	var wrapped []byte
	if err := b.backend.View(ctx, func(tx storage.Tx) error {
		v, err := tx.Get(keyRootWrapped)
		wrapped = v
		return err
	}); err != nil {
		return Status{}, fmt.Errorf("barrier: reading the wrapped root key: %w", err)
	}
	rk, err := w.Unwrap(ctx, wrapped, []byte(keyRootWrapped))
	if err != nil {
		return Status{}, fmt.Errorf("barrier: the HSM did not unwrap the root key (another token or key?): %w", err)
	}
	if len(rk) != keyLen {
		clear(rk)
		return Status{}, ErrCorrupt
	}
	b.mu.Lock()
	if b.root == nil {
		b.root = rk
	} else {
		clear(rk)
	}
	b.mu.Unlock()
	return b.Status(ctx)
}

// combineShares rebuilds a key from shares (one share is the key).
func combineShares(cfg *SealConfig, shares [][]byte) ([]byte, error) {
	if len(shares) < cfg.Threshold {
		return nil, fmt.Errorf("barrier: %d shares are needed, %d given", cfg.Threshold, len(shares))
	}
	if cfg.Shares == 1 {
		if len(shares[0]) != keyLen {
			return nil, ErrMalformedShare
		}
		return append([]byte(nil), shares[0]...), nil
	}
	for _, s := range shares {
		if len(s) != keyLen+1 {
			return nil, ErrMalformedShare
		}
	}
	k, err := shamir.Combine(shares)
	if err != nil {
		return nil, ErrBadShares
	}
	return k, nil
}

// MigrateSeal moves an unsealed barrier between the shamir and pkcs11
// seals without changing the root key, so no stored value is re-encrypted
// and the node keeps serving. shares are the current unseal shares
// (shamir → pkcs11: they become the recovery shares) or the recovery
// shares (pkcs11 → shamir: they become the unseal shares); a threshold of
// them is required and checked. The change is one storage transaction.
func (b *Barrier) MigrateSeal(ctx context.Context, to string, shares [][]byte, now time.Time) (Status, error) {
	cfg, err := b.sealConfig(ctx)
	if err != nil {
		return Status{}, err
	}
	if cfg == nil {
		return Status{}, ErrNotInitialized
	}
	if cfg.Type == to || (to != SealPKCS11 && to != "shamir") {
		return Status{}, fmt.Errorf("barrier: cannot migrate a %s seal to %q", cfg.Type, to)
	}
	if cfg.Type != SealPKCS11 && cfg.Type != "shamir" {
		return Status{}, fmt.Errorf("barrier: a %s seal cannot be migrated", cfg.Type)
	}
	w := b.getWrapper()
	if w == nil {
		return Status{}, ErrNoWrapper
	}
	key, err := combineShares(cfg, shares)
	if err != nil {
		return Status{}, err
	}
	defer clear(key)
	b.mu.RLock()
	root := append([]byte(nil), b.root...)
	b.mu.RUnlock()
	defer clear(root)
	if len(root) == 0 {
		return Status{}, ErrSealed
	}
	newCfg := *cfg
	newCfg.Type = to
	newCfg.Created = now.UTC()
	cfgJSON, err := jsonMarshal(newCfg)
	if err != nil {
		return Status{}, err
	}
	err = b.backend.Update(ctx, func(tx storage.Tx) error {
		if cfg.Type == "shamir" {
			// The shares must open the stored root key: they are the
			// unseal shares, and now become recovery shares.
			sealed, err := tx.Get(keyRoot)
			if err != nil {
				return err
			}
			rk, err := openWith(key, []byte(keyRoot), sealed)
			if err != nil {
				return ErrBadShares
			}
			same := subtle.ConstantTimeCompare(rk, root)
			clear(rk)
			if same != 1 {
				return ErrBadShares
			}
			wrapped, err := w.Wrap(ctx, root, []byte(keyRootWrapped))
			if err != nil {
				return fmt.Errorf("barrier: wrapping the root key in the HSM: %w", err)
			}
			check, err := sealWith(key, []byte(recoveryAAD), recoveryPlain)
			if err != nil {
				return err
			}
			if err := tx.Put(keyRootWrapped, wrapped); err != nil {
				return err
			}
			if err := tx.Put(keyRecovery, check); err != nil {
				return err
			}
			if err := tx.Delete(keyRoot); err != nil {
				return err
			}
		} else {
			check, err := tx.Get(keyRecovery)
			if err != nil {
				return err
			}
			if _, err := openWith(key, []byte(recoveryAAD), check); err != nil {
				return ErrBadShares
			}
			sealed, err := sealWith(key, []byte(keyRoot), root)
			if err != nil {
				return err
			}
			if err := tx.Put(keyRoot, sealed); err != nil {
				return err
			}
			if err := tx.Delete(keyRootWrapped); err != nil {
				return err
			}
			if err := tx.Delete(keyRecovery); err != nil {
				return err
			}
		}
		return tx.Put(keySealConfig, cfgJSON)
	})
	if err != nil {
		return Status{}, err
	}
	b.mu.Lock()
	b.cfg = &newCfg
	b.mu.Unlock()
	return b.Status(ctx)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// VerifyShares reports whether shares are a threshold of this barrier's
// unseal shares (shamir, dev) or recovery shares (pkcs11), changing
// nothing: quorum break-glass (docs/QUORUM.md) proves the operators hold
// them. A wrong set is ErrBadShares or ErrMalformedShare.
func (b *Barrier) VerifyShares(ctx context.Context, shares [][]byte) error {
	cfg, err := b.sealConfig(ctx)
	if err != nil {
		return err
	}
	if cfg == nil {
		return ErrNotInitialized
	}
	if len(shares) == 0 {
		return ErrBadShares
	}
	key, err := combineShares(cfg, shares)
	if err != nil {
		return err
	}
	defer clear(key)
	return b.backend.View(ctx, func(tx storage.Tx) error {
		if cfg.Type == SealPKCS11 {
			check, err := tx.Get(keyRecovery)
			if err != nil {
				return err
			}
			if _, err := openWith(key, []byte(recoveryAAD), check); err != nil {
				return ErrBadShares
			}
			return nil
		}
		sealed, err := tx.Get(keyRoot)
		if err != nil {
			return err
		}
		rk, err := openWith(key, []byte(keyRoot), sealed)
		if err != nil {
			return ErrBadShares
		}
		clear(rk)
		return nil
	})
}
