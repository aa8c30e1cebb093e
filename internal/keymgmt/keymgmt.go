// Package keymgmt is Keyward's Key Management engine: keys held centrally
// (versioned, their material sealed by the barrier like every other key),
// KMS providers (a cloud KMS and the credentials to reach it) and
// distributions (a copy of a key delivered into a provider under its BYOK
// specification, with a purpose and a protection). Rotating a key, raising
// its minimum enabled version or removing a distribution is carried into
// every provider it is distributed to; a leader-run job (Reconcile)
// compares each distribution with its target and repairs what drifted.
//
// This package is domain: no HTTP, no wire format. Vault's keymgmt API is
// its surface (internal/keymgmtapi); the providers that speak to Azure Key
// Vault and AWS KMS live in internal/kmsprovider and are handed in as
// Factories.
package keymgmt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/errs"
)

// Key types (Vault's names).
const (
	TypeAES256    = "aes256-gcm96"
	TypeRSA2048   = "rsa-2048"
	TypeRSA3072   = "rsa-3072"
	TypeRSA4096   = "rsa-4096"
	TypeECDSAP256 = "ecdsa-p256"
	TypeECDSAP384 = "ecdsa-p384"
	TypeECDSAP521 = "ecdsa-p521"
)

// Types lists every key type, in Vault's order.
var Types = []string{TypeAES256, TypeRSA2048, TypeRSA3072, TypeRSA4096, TypeECDSAP256, TypeECDSAP384, TypeECDSAP521}

// Purposes a distributed key may have (Vault's names).
var Purposes = []string{"encrypt", "decrypt", "sign", "verify", "wrap", "unwrap"}

// Protections of a distributed key.
const (
	ProtectionHSM      = "hsm"
	ProtectionSoftware = "software"
)

// Error object types.
const (
	objKey          = "keymgmt key"
	objKMS          = "keymgmt kms"
	objDistribution = "keymgmt distribution"
)

// Reasons of BadParameter and Conflict errors: a fixed vocabulary the
// surface words (internal/keymgmtapi).
const (
	ReasonInvalidName        = "InvalidName"
	ReasonInvalidType        = "InvalidKeyType"
	ReasonInvalidMinVersion  = "InvalidMinEnabledVersion"
	ReasonDeletionNotAllowed = "DeletionNotAllowed"
	ReasonKeyDistributed     = "KeyDistributed"
	ReasonKMSInUse           = "KMSHasDistributions"
	ReasonInvalidProvider    = "InvalidProvider"
	ReasonInvalidCollection  = "InvalidKeyCollection"
	ReasonInvalidCredentials = "InvalidCredentials"
	ReasonProviderChange     = "ProviderImmutable"
	ReasonInvalidPurpose     = "InvalidPurpose"
	ReasonInvalidProtection  = "InvalidProtection"
	ReasonUnsupported        = "UnsupportedByProvider"
	ReasonBusy               = "DistributionBusy"
	ReasonExists             = "AlreadyExists"
)

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// ValidName reports whether name may name a key or a KMS provider: what
// every supported target accepts (Azure Key Vault's object names).
func ValidName(name string) bool { return nameRE.MatchString(name) }

func bad(typ, name, reason string) error {
	return &errs.Error{Kind: errs.BadParameter, Type: typ, Name: name, Reason: reason}
}

// Key is a centrally held key. Its versions' material never leaves this
// package except to a Provider, which delivers it wrapped.
type Key struct {
	Name              string
	Type              string
	Created           time.Time
	LatestVersion     int
	MinEnabledVersion int
	DeletionAllowed   bool
	Versions          map[int]*Version
}

// Version is one version of a key.
type Version struct {
	Created time.Time
	// material is PKCS#8 DER (RSA, EC) or the raw AES key bytes.
	material []byte
}

// Symmetric reports whether k is an AES key.
func (k *Key) Symmetric() bool { return k.Type == TypeAES256 }

// Enabled reports whether version v exists and is not below the minimum
// enabled version.
func (k *Key) Enabled(v int) bool {
	_, ok := k.Versions[v]
	return ok && v >= k.MinEnabledVersion
}

// VersionNumbers lists the key's versions in ascending order.
func (k *Key) VersionNumbers() []int {
	out := make([]int, 0, len(k.Versions))
	for v := range k.Versions {
		out = append(out, v)
	}
	sort.Ints(out)
	return out
}

// Private returns version v's private key (*rsa.PrivateKey,
// *ecdsa.PrivateKey) or, for AES, the raw key bytes ([]byte). It is for
// providers, which deliver it wrapped; the caller must not keep or log it.
func (k *Key) Private(v int) (any, error) {
	ver, ok := k.Versions[v]
	if !ok {
		return nil, &errs.Error{Kind: errs.NotFound, Type: objKey, Name: k.Name, Version: fmt.Sprint(v)}
	}
	if k.Symmetric() {
		return ver.material, nil
	}
	return x509.ParsePKCS8PrivateKey(ver.material)
}

// PKCS8 returns version v's private key as PKCS#8 DER (asymmetric keys), or
// the raw key bytes (AES): the target of a BYOK transfer blob.
func (k *Key) PKCS8(v int) ([]byte, error) {
	ver, ok := k.Versions[v]
	if !ok {
		return nil, &errs.Error{Kind: errs.NotFound, Type: objKey, Name: k.Name, Version: fmt.Sprint(v)}
	}
	return ver.material, nil
}

// Public returns version v's public key (nil for AES).
func (k *Key) Public(v int) (crypto.PublicKey, error) {
	if k.Symmetric() {
		return nil, nil
	}
	priv, err := k.Private(v)
	if err != nil {
		return nil, err
	}
	return priv.(crypto.Signer).Public(), nil
}

// PublicPEM returns version v's public key as a PEM "PUBLIC KEY" block, as
// Vault shows it ("" for AES).
func (k *Key) PublicPEM(v int) string {
	pub, err := k.Public(v)
	if err != nil || pub == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// generate makes new key material of type typ.
func generate(typ string) ([]byte, error) {
	var priv any
	var err error
	switch typ {
	case TypeAES256:
		b := make([]byte, 32)
		rand.Read(b)
		return b, nil
	case TypeRSA2048, TypeRSA3072, TypeRSA4096:
		bits := map[string]int{TypeRSA2048: 2048, TypeRSA3072: 3072, TypeRSA4096: 4096}[typ]
		priv, err = rsa.GenerateKey(rand.Reader, bits)
	case TypeECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case TypeECDSAP384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case TypeECDSAP521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	default:
		return nil, bad(objKey, "", ReasonInvalidType)
	}
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(priv)
}

// ValidType reports whether typ is a key type.
func ValidType(typ string) bool {
	for _, t := range Types {
		if t == typ {
			return true
		}
	}
	return false
}

// KMS is a configured KMS provider.
type KMS struct {
	Name          string
	Provider      string
	KeyCollection string
	// Credentials are sealed by the barrier and never shown.
	Credentials map[string]string
	Created     time.Time
}

// Distribution is a key distributed to a KMS provider.
type Distribution struct {
	KMS        string
	Key        string
	Purpose    []string
	Protection string
	Created    time.Time
	// Versions maps each central version delivered to the target's ID of
	// it (an Azure key version, an AWS KMS key ID).
	Versions map[int]string
	// Reconciliation state: State is "distributed" (the target matches),
	// "repaired" (the last check found drift and fixed it) or "error"
	// (the last attempt failed: LastError says why; retried at
	// NextAttempt with backoff).
	State       string
	LastError   string
	Findings    []string
	LastChecked time.Time
	NextAttempt time.Time
	Failures    int
}

// Distribution states.
const (
	StateDistributed = "distributed"
	StateRepaired    = "repaired"
	StateError       = "error"
)

// ParsePurpose parses Vault's purpose: a comma-separated string or a list.
func ParsePurpose(items []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, it := range items {
		for _, p := range strings.Split(it, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			if p == "" {
				continue
			}
			if !validPurpose(p) {
				return nil, bad(objDistribution, p, ReasonInvalidPurpose)
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, bad(objDistribution, "", ReasonInvalidPurpose)
	}
	return out, nil
}

func validPurpose(p string) bool {
	for _, q := range Purposes {
		if p == q {
			return true
		}
	}
	return false
}

// Target is what a Provider works on: the provider's configuration, the
// key (with its material) and the distribution.
type Target struct {
	KMS  *KMS
	Key  *Key
	Dist *Distribution
}

// SyncResult is what a Provider found and did.
type SyncResult struct {
	// Versions maps central versions to the target's IDs, as they are now.
	Versions map[int]string
	// Findings name each drift found and repaired, in fixed words
	// ("version 1 missing in the target: imported").
	Findings []string
}

// Provider delivers keys to one KMS. Every method is idempotent: Sync
// brings the target to the key's state whatever it finds there.
type Provider interface {
	// Supports reports whether the target can hold keys of typ with
	// purpose and protection (a BadParameter error with
	// ReasonUnsupported when not).
	Supports(typ string, purpose []string, protection string) error
	// Sync makes the target match the key: every enabled version present,
	// enabled and equal to Keyward's, the latest one current, versions
	// below the minimum enabled version disabled.
	Sync(ctx context.Context, t Target) (SyncResult, error)
	// Remove deletes the key's copies from the target (as the target
	// allows: soft delete, scheduled deletion).
	Remove(ctx context.Context, t Target) error
}

// Factory makes a Provider for a KMS configuration, refusing an invalid
// one with a BadParameter error (ReasonInvalidCredentials,
// ReasonInvalidCollection).
type Factory func(k *KMS) (Provider, error)

// ProviderError is a failure of a KMS provider (the target refused or
// could not be reached): Unavailable to the caller, retried by Reconcile.
type ProviderError struct {
	KMS string
	Err error
}

func (e *ProviderError) Error() string { return "kms " + e.KMS + ": " + e.Err.Error() }
func (e *ProviderError) Unwrap() error { return e.Err }

// ErrKind makes a ProviderError Unavailable.
func (e *ProviderError) ErrKind() errs.Kind { return errs.Unavailable }

// IsProviderError reports whether err is a provider's failure.
func IsProviderError(err error) bool {
	var pe *ProviderError
	return errors.As(err, &pe)
}
