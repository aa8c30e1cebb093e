package vault

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
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

// PurgeContainer destroys everything a pool's container holds: its
// storage, then its keys' token objects (those no other pool holds).
func (s *Service) PurgeContainer(ctx context.Context, v *Vault) error {
	held, err := s.HSMHandles(ctx, v)
	if err != nil {
		return err
	}
	s.ops.evictVault(v)
	if err := s.in(v).Destroy(ctx); err != nil {
		return err
	}
	s.destroyOwned(ctx, v, held)
	return nil
}

// SetPoolHandlesElsewhere sets how the service learns which token objects
// pools other than v hold (internal/mhsm knows the pools). A full backup
// carries HSM keys as token references, so a restore into another pool
// shares the object: purging a key or pool destroys only objects no other
// pool holds. Without it, pool purges destroy nothing in the token.
func (s *Service) SetPoolHandlesElsewhere(f func(ctx context.Context, v *Vault) (map[string]bool, error)) {
	s.poolHandlesElsewhere = f
}

// materialProtector is the protector that holds v's HSM key objects.
func (s *Service) materialProtector(v *Vault) keys.Protector {
	if v.IsPool() {
		return s.PoolProtector()
	}
	return s.hsm
}

// HSMHandles returns the token object handles of every version of every
// key (live or deleted) v holds in its HSM protector.
func (s *Service) HSMHandles(ctx context.Context, v *Vault) ([][]byte, error) {
	d, ok := s.materialProtector(v).(destroyer)
	if !ok {
		return nil, nil
	}
	var held [][]byte
	o := s.objs(v, Keys)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		return tx.Scan(o.base()+"/m/", "", func(_ string, val []byte) bool {
			if d.Holds(val) {
				held = append(held, slices.Clone(val))
			}
			return true
		})
	})
	return held, err
}

// destroyOwned destroys the token objects of held that belong to v alone:
// those no other vault (live or soft-deleted) and no other pool holds — a
// key backup restored into another vault of the tenant, or a full backup
// restored into another pool, shares the object. When that cannot be
// told (an error, or a pool without the pool registry), nothing is
// destroyed: an orphan object is better than a shared one destroyed.
func (s *Service) destroyOwned(ctx context.Context, v *Vault, held [][]byte) {
	if len(held) == 0 {
		return
	}
	elsewhere, err := s.handlesElsewhere(ctx, v)
	if err != nil {
		return
	}
	for _, h := range held {
		if !elsewhere[string(h)] {
			s.destroyMaterial(s.materialProtector(v), h)
		}
	}
}

// poolProtector is protector for a pool: HSM key types only.
func (s *Service) poolProtector(kty string) (keys.Protector, string, error) {
	switch kty {
	case "RSA-HSM", "EC-HSM":
		return s.PoolProtector(), strings.TrimSuffix(kty, "-HSM"), nil
	case "oct-HSM":
		return s.aesProtector(), keys.KtyOct, nil
	case keys.KtyAKP, keys.KtyAKP + "-HSM":
		return nil, "", badParameter("Key type %s is not supported by a managed HSM: its HSM has no ML-DSA or ML-KEM mechanisms. Create post-quantum keys (kty AKP) in a vault (docs/POST-QUANTUM.md).", kty)
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
	res := &CryptoResult{Name: rec.Name, Version: ver.Version, Protection: protection(ver)}
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

// PoolKeyRecord is one key of a pool's full backup: every version with its
// material as stored (a software key's sealed-at-rest private key, or an
// HSM key's token reference), as JSON the caller encrypts.
type PoolKeyRecord = []byte

// ExportPoolKeys returns every live key of container v, in one read
// transaction (a consistent snapshot), optionally only the key named only.
func (s *Service) ExportPoolKeys(ctx context.Context, v *Vault, only string) ([]PoolKeyRecord, error) {
	var out []PoolKeyRecord
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		o := s.objs(v, Keys)
		var names []string
		if err := tx.Scan(o.base()+"/n/", "", func(key string, _ []byte) bool {
			names = append(names, strings.TrimPrefix(key, o.base()+"/n/"))
			return true
		}); err != nil {
			return err
		}
		for _, n := range names {
			if only != "" && !strings.EqualFold(n, only) {
				continue
			}
			b, err := backupOf[keyPayload](tx, o, n, false)
			if err != nil {
				return err
			}
			kb := &backup[keyBackupVersion]{Type: Keys, Tenant: b.Tenant, Record: b.Record}
			for _, ver := range b.Versions {
				m, err := tx.Get(o.materialKey(n, ver.Version))
				if err != nil {
					return err
				}
				kb.Versions = append(kb.Versions, &Version[keyBackupVersion]{Version: ver.Version,
					Payload: keyBackupVersion{Version: *ver, Material: m}})
			}
			raw, err := json.Marshal(kb)
			wipeMaterial(kb)
			if err != nil {
				return err
			}
			out = append(out, raw)
		}
		return nil
	})
	return out, err
}

// ImportPoolKeys writes keys exported by ExportPoolKeys into container v in
// one transaction: all or nothing. A full restore (only "") writes the keys
// the pool does not have and leaves the others (live or deleted) as they
// are; a selective restore (only: that key) fails, changing nothing, when
// the name is taken. It returns the number of keys written.
func (s *Service) ImportPoolKeys(ctx context.Context, v *Vault, recs []PoolKeyRecord, only string) (int, error) {
	var bs []*backup[keyBackupVersion]
	defer func() {
		for _, b := range bs {
			wipeMaterial(b)
		}
	}()
	for _, raw := range recs {
		b := new(backup[keyBackupVersion])
		if err := json.Unmarshal(raw, b); err != nil {
			return 0, invalidBackup(Keys)
		}
		bs = append(bs, b)
	}
	n := 0
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		for _, b := range bs {
			if only != "" && !strings.EqualFold(b.Record.Name, only) {
				continue
			}
			vers, latest := keyVersionsIn(b)
			if b.Type != Keys || latest == nil {
				return invalidBackup(Keys)
			}
			if only == "" { // a full restore leaves keys the pool has (live or deleted) as they are
				o := s.objs(v, Keys)
				if _, err := tx.Get(o.nameKey(b.Record.Name)); err == nil {
					continue
				}
				if _, err := tx.Get(o.deletedKey(b.Record.Name)); err == nil {
					continue
				}
			}
			for _, ver := range vers {
				if _, err := s.protectorByName(ver.Payload.Protector, b.Record.Name); err != nil {
					return err
				}
			}
			if err := restoreKeyObject(tx, s.objs(v, Keys), b, vers); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err == nil && only != "" && n == 0 {
		return 0, &Error{Kind: NotFound, Type: Keys, Name: only}
	}
	return n, err
}

// handlesElsewhere is the set of token object handles held by every vault
// and pool container other than v.
func (s *Service) handlesElsewhere(ctx context.Context, v *Vault) (map[string]bool, error) {
	out := map[string]bool{}
	if s.poolHandlesElsewhere != nil {
		pools, err := s.poolHandlesElsewhere(ctx, v)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, pools)
	} else if v.IsPool() {
		return nil, errors.New("vault: the pools' token objects cannot be told")
	}
	if err := s.Load(ctx); err != nil { // vaults another node made
		return nil, err
	}
	others := s.Vaults()
	deleted, err := s.DeletedVaults(ctx)
	if err != nil {
		return nil, err
	}
	for _, dv := range deleted {
		others = append(others, &dv.Vault)
	}
	for _, o := range others {
		if o.ID == v.ID {
			continue
		}
		held, err := s.HSMHandles(ctx, o)
		if err != nil {
			return nil, err
		}
		for _, h := range held {
			out[string(h)] = true
		}
	}
	return out, nil
}
