package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/barrier"
)

// External OIDC issuers for workload identity federation (IDENTITY.md §7).
// An issuer's keys come from an uploaded JWKS (air-gapped clusters), or
// else from its discovery document fetched over HTTPS and cached.

const (
	maxJWKSBytes     = 64 << 10
	maxJWKSKeys      = 100 // Entra keeps the first 100 keys
	issuerKeysMaxAge = time.Hour
)

// JWKSet is a parsed key set: keys by kid, in document order.
type JWKSet struct {
	Keys []PublicJWK
}

// PublicJWK is one public key of a key set.
type PublicJWK struct {
	Kid string
	Key crypto.PublicKey
}

type jwkWire struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS parses a JSON Web Key Set of RSA (≥ 2048 bits) and EC (P-256,
// P-384, P-521) public keys. Keys of other types, private keys and keys
// for encryption are skipped; a set with no usable key is an error.
func ParseJWKS(raw []byte) (*JWKSet, error) {
	if len(raw) > maxJWKSBytes {
		return nil, errors.New("identity: key set too large")
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, errors.New("identity: key set is not valid JSON")
	}
	set := &JWKSet{}
	for _, k := range doc.Keys {
		if len(set.Keys) == maxJWKSKeys {
			break
		}
		var w jwkWire
		if json.Unmarshal(k, &w) != nil || (w.Use != "" && w.Use != "sig") {
			continue
		}
		var priv struct {
			D string `json:"d"`
		}
		if json.Unmarshal(k, &priv) == nil && priv.D != "" {
			return nil, errors.New("identity: key set holds a private key")
		}
		if pub, err := w.publicKey(); err == nil {
			set.Keys = append(set.Keys, PublicJWK{Kid: w.Kid, Key: pub})
		}
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("identity: key set has no usable signing key")
	}
	return set, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func (w *jwkWire) publicKey() (crypto.PublicKey, error) {
	switch w.Kty {
	case "RSA":
		n, err1 := b64(w.N)
		e, err2 := b64(w.E)
		if err1 != nil || err2 != nil || len(n) < 256 || len(n) > 1024 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		ev := 0
		for _, b := range e {
			ev = ev<<8 | int(b)
		}
		if ev < 3 || ev%2 == 0 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}, nil
	case "EC":
		var c elliptic.Curve
		switch w.Crv {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return nil, errors.New("unsupported curve")
		}
		x, err1 := b64(w.X)
		y, err2 := b64(w.Y)
		size := (c.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC key")
		}
		pt := append([]byte{4}, append(x, y...)...)
		return ecdsa.ParseUncompressedPublicKey(c, pt)
	}
	return nil, errors.New("unsupported key type")
}

// Find returns the key with kid; with an empty kid and a single key, that
// key.
func (s *JWKSet) Find(kid string) (crypto.PublicKey, bool) {
	if kid == "" && len(s.Keys) == 1 {
		return s.Keys[0].Key, true
	}
	for _, k := range s.Keys {
		if k.Kid == kid {
			return k.Key, true
		}
	}
	return nil, false
}

func issuerKey(tenant, issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return "sys/identity/issuers/" + strings.ToLower(tenant) + "/" + hex.EncodeToString(sum[:])
}

type storedIssuer struct {
	Issuer   string          `json:"issuer"`
	JWKS     json.RawMessage `json:"jwks"`
	Uploaded time.Time       `json:"uploaded"`
}

// SetIssuerKeys stores an uploaded key set for issuer in tenant: tokens of
// that issuer are then verified with these keys only, without fetching
// anything (air-gapped clusters: `kubectl get --raw /openid/v1/jwks`).
func (d *Directory) SetIssuerKeys(ctx context.Context, tenant, issuer string, jwks []byte, now time.Time) error {
	if !strings.HasPrefix(issuer, "https://") || len(issuer) > 600 {
		return invalid("issuer must be an https URL of at most 600 characters")
	}
	if _, err := ParseJWKS(jwks); err != nil {
		return invalid("%s", err.Error())
	}
	return put(ctx, d.store, issuerKey(tenant, issuer), &storedIssuer{Issuer: issuer, JWKS: jwks, Uploaded: now.UTC()})
}

// DeleteIssuerKeys removes an uploaded key set.
func (d *Directory) DeleteIssuerKeys(ctx context.Context, tenant, issuer string) error {
	if _, err := d.issuerKeys(ctx, tenant, issuer); err != nil {
		return err
	}
	return d.store.Update(ctx, func(tx barrier.Tx) error { return tx.Delete(issuerKey(tenant, issuer)) })
}

func (d *Directory) issuerKeys(ctx context.Context, tenant, issuer string) (*JWKSet, error) {
	var si storedIssuer
	if err := get(ctx, d.store, issuerKey(tenant, issuer), &si); err != nil {
		return nil, err
	}
	return ParseJWKS(si.JWKS)
}

// authorityExt is the Authority's state for credentials beyond client
// secrets: replay protection of client assertions, cached issuer keys,
// pending device codes, and the HTTP client used for issuer discovery.
type authorityExt struct {
	mu       sync.Mutex
	jtis     map[string]time.Time // assertion IDs seen, until they expire
	issuers  map[string]cachedIssuer
	devices  map[string]*deviceCode     // by device_code hash
	userCode map[string]string          // user code -> device_code hash
	fetch    fetcher                    // issuer discovery (http_issuers.go); nil: the default client
	failures map[string]*signInFailures // tenant|username -> recent failed sign-ins
	web      webState                   // authorization codes, refresh tokens: authcode.go
}

type cachedIssuer struct {
	keys    *JWKSet
	fetched time.Time
}

// externalKeys returns the key set of an external issuer for tenant: the
// uploaded one if any, else the one its discovery document names, fetched
// over HTTPS and cached for an hour (refetched once when kid is unknown).
func (a *Authority) externalKeys(ctx context.Context, tenant, issuer, kid string) (*JWKSet, error) {
	if set, err := a.dir.issuerKeys(ctx, tenant, issuer); err == nil {
		return set, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	now := a.clock.Now()
	a.ext.mu.Lock()
	c, ok := a.ext.issuers[issuer]
	fetch := a.ext.fetch
	a.ext.mu.Unlock()
	if ok && now.Sub(c.fetched) < issuerKeysMaxAge {
		if _, found := c.keys.Find(kid); found || now.Sub(c.fetched) < time.Minute {
			return c.keys, nil
		}
	}
	set, err := fetchIssuerKeys(ctx, fetch, issuer)
	if err != nil {
		return nil, err
	}
	a.ext.mu.Lock()
	if a.ext.issuers == nil {
		a.ext.issuers = map[string]cachedIssuer{}
	}
	if len(a.ext.issuers) > 1000 {
		clear(a.ext.issuers)
	}
	a.ext.issuers[issuer] = cachedIssuer{keys: set, fetched: now}
	a.ext.mu.Unlock()
	return set, nil
}

// fetcher reads an HTTPS URL (http_issuers.go speaks HTTP).
type fetcher func(ctx context.Context, u string) ([]byte, error)

func fetchIssuerKeys(ctx context.Context, fetch fetcher, issuer string) (*JWKSet, error) {
	if fetch == nil {
		fetch = defaultFetcher()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	raw, err := fetch(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration")
	if err == nil {
		err = json.Unmarshal(raw, &disc)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: issuer discovery: %w", err)
	}
	if strings.TrimSuffix(disc.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return nil, errors.New("identity: issuer discovery document names another issuer")
	}
	raw, err = fetch(ctx, disc.JWKSURI)
	if err != nil {
		return nil, fmt.Errorf("identity: issuer keys: %w", err)
	}
	return ParseJWKS(raw)
}
