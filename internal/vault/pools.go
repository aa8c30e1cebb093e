package vault

import (
	"context"
	"strings"

	"github.com/keyward/keyward/internal/keys"
)

// Managed HSM pools (AZURE-API.md §5) are key containers too: a pool's
// keys are stored and served by this package exactly like a vault's, in the
// pool's own barrier namespace. What differs is decided here: which key
// types a pool takes (RSA-HSM, EC-HSM, oct-HSM; never software keys), which
// protector makes them, and the AES operations (iv, aad, tag). The pool
// registry, its local RBAC and its security domain are internal/mhsm's.

// KindManagedHSM marks a Vault that is a managed HSM pool's key container.
const KindManagedHSM = "managedHSM"

// IsPool reports whether v is a managed HSM pool's key container.
func (v *Vault) IsPool() bool { return v.Kind == KindManagedHSM }

// SetPoolProtector sets the protector of pool keys (an HSM, when one is
// configured; keys.Software otherwise). Call it before serving.
func (s *Service) SetPoolProtector(p keys.Protector) { s.pool = p }

// PoolProtector is the protector pool RSA-HSM and EC-HSM keys are made
// with: the one set by SetPoolProtector, else the configured HSM, else the
// software protector (a Keyward without an HSM still serves pools).
func (s *Service) PoolProtector() keys.Protector {
	switch {
	case s.pool != nil:
		return s.pool
	case s.hsm != nil:
		return s.hsm
	}
	return s.software
}

// aesProtector makes oct-HSM keys: the pool protector when its operators
// do AES (keys.AESOperator; internal/hsm's do not yet), else software.
func (s *Service) aesProtector() keys.Protector {
	if p, ok := s.PoolProtector().(interface{ DoesAES() bool }); ok && p.DoesAES() {
		return s.PoolProtector()
	}
	return s.software
}

// InitContainer prepares the storage of a key container that is not in the
// vault registry (a pool's): its keyring and its tenant's.
func (s *Service) InitContainer(ctx context.Context, v *Vault) error {
	now := s.clock.Now()
	if err := s.in(v).EnsureKeyring(ctx, now); err != nil {
		return err
	}
	return s.store.Tenant(v.TenantID).EnsureKeyring(ctx, now)
}

// PurgeContainer destroys everything a pool's container holds.
func (s *Service) PurgeContainer(ctx context.Context, v *Vault) error {
	s.ops.evictVault(v)
	return s.in(v).Destroy(ctx)
}

// poolProtector is protector for a pool: HSM key types only.
func (s *Service) poolProtector(kty string) (keys.Protector, string, error) {
	switch kty {
	case "RSA-HSM", "EC-HSM":
		return s.PoolProtector(), strings.TrimSuffix(kty, "-HSM"), nil
	case "oct-HSM":
		return s.aesProtector(), keys.KtyOct, nil
	case "":
		return nil, "", badParameter("The key type (kty) is required.")
	}
	return nil, "", badParameter("Key type %s is not supported by a managed HSM. Supported key types: RSA-HSM, EC-HSM, oct-HSM.", clip(kty))
}

// CryptoAES performs an AES encrypt or decrypt (GCM and CBC need iv, aad
// and tag, which the other algorithms do not have) with the same checks as
// Crypto. The result carries the iv and tag encryption produced.
func (s *Service) CryptoAES(ctx context.Context, v *Vault, name, version string, op CryptoOp, alg string, data, iv, aad, tag []byte) (*CryptoResult, error) {
	if op != OpEncrypt && op != OpDecrypt {
		return s.Crypto(ctx, v, name, version, op, alg, data, nil)
	}
	rec, ver, opr, err := s.cryptoOperator(ctx, v, name, version, op)
	if err != nil {
		return nil, err
	}
	aop, ok := opr.(keys.AESOperator)
	if !ok {
		return nil, badParameter("Algorithm %s needs a symmetric (oct-HSM) key.", clip(alg))
	}
	res := &CryptoResult{Name: rec.Name, Version: ver.Version}
	if op == OpEncrypt {
		res.Value, res.IV, res.Tag, err = aop.EncryptAES(ctx, alg, data, iv, aad)
		res.AAD = aad
	} else {
		res.Value, err = aop.DecryptAES(ctx, alg, data, iv, aad, tag)
	}
	if err != nil {
		return nil, keyError(err)
	}
	return res, nil
}

// evictVault drops every cached key of v.
func (c *opCache) evictVault(v *Vault) {
	prefix := v.ID + "/"
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, prefix) {
			delete(c.m, k)
		}
	}
}
